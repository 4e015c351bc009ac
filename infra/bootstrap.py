"""Bootstrap a stack's storage: the fixed base datasets, the shipped baseline model and the
previous baselines.

After ``sam deploy`` (or by ``make serve`` against its local S3 and DynamoDB) this uploads
``cifar10-train.zip`` and ``cifar10-test.zip`` to ``datasets/base/``, the baseline's
``model.tflite``, ``model.keras`` and ``card.json`` to ``models/<version>/``, registers the
baseline (status ``baseline``) and points serving at it unless a pointer exists. The previous
baselines (``models/<version>/`` in this repository) are uploaded and registered the same way,
so a stack deployed after a new baseline shipped can still roll back to the one before it. A
stack that already serves a version keeps serving it: a new baseline is registered, and
promoting it is the operator's call (``POST /models/{version}/promote``). Running it again
changes nothing that is there already.

    python -m infra.bootstrap --stack cifar10-classifier --data ../shared/data   # a deployed stack
"""

import argparse
from pathlib import Path

import boto3

from classifier import storage
from classifier.aws import object_exists
from classifier.cards import BASELINE_DIR, read_card
from classifier.mlops import registry

# Baselines shipped before the current one, each a folder of model.tflite, model.keras, card.json.
PREVIOUS_BASELINES_DIR = Path(__file__).resolve().parents[1] / "models"


def kept_models() -> list[Path]:
    """The shipped baseline's folder, then the previous baselines', oldest first."""
    previous = sorted(
        (path for path in PREVIOUS_BASELINES_DIR.glob("*") if (path / storage.CARD_NAME).is_file()),
        key=lambda path: read_card(path)["created_at"],
    )
    return [BASELINE_DIR, *previous]


def bootstrap(s3, bucket: str, models_table, data_dir: Path | None, log=print) -> str:
    """Upload what is missing; return the baseline's version."""
    if data_dir is not None:
        for name in (storage.BASE_TRAIN_NAME, storage.BASE_TEST_NAME):
            _upload_once(s3, bucket, data_dir / name, storage.dataset_key(name), log)
    for directory in kept_models():
        card = read_card(directory)
        for name in (storage.TFLITE_NAME, storage.KERAS_NAME, storage.CARD_NAME):
            _upload_once(s3, bucket, directory / name, storage.model_key(card["version"], name), log)
        if models_table.get_item(Key={"version": card["version"]}).get("Item") is None:
            registry.put_version(models_table, registry.version_item(card, registry.ModelStatus.BASELINE))
    version = read_card(BASELINE_DIR)["version"]
    if registry.read_pointer(models_table) is None:
        registry.promote(models_table, version, expected_current=None)
        log(f"serving {version}")
    return version


def _upload_once(s3, bucket: str, path: Path, key: str, log) -> None:
    if object_exists(s3, bucket, key):
        return
    s3.upload_file(str(path), bucket, key)
    log(f"uploaded s3://{bucket}/{key}")


def stack_outputs(stack: str) -> dict[str, str]:
    described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", required=True, help="the CloudFormation stack name (samconfig.toml's)")
    parser.add_argument(
        "--data", type=Path, required=True, help="folder holding cifar10-train.zip and cifar10-test.zip"
    )
    args = parser.parse_args(argv)
    outputs = stack_outputs(args.stack)
    models = boto3.resource("dynamodb").Table(outputs["ModelsTableName"])
    bootstrap(boto3.client("s3"), outputs["ArtifactsBucketName"], models, args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
