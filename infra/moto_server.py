"""S3 and DynamoDB on a local moto server, with the template's buckets and tables: what the
benchmarks and the build tests stand AWS in with (the local API starts its own the same way).

Never imported by the functions: moto is a developer tool.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from infra.template import Template

# What botocore needs to talk to moto; none of it is a secret.
MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@contextmanager
def moto_server(template: Template, region: str) -> Iterator[dict[str, str]]:
    """Start a moto server on loopback, point this process's AWS environment at it, create the
    template's storage there, and yield that environment (for child processes); on exit the server
    stops and the environment is as it was."""
    from moto.server import ThreadedMotoServer

    from infra.local_api import create_storage

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        host, port = server.get_host_and_port()
        environment = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            **MOTO_CREDENTIALS,
            "AWS_DEFAULT_REGION": region,
        }
        os.environ.update(environment)
        create_storage(template, region)
        yield environment
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
