"""Running the system outside AWS: the template reader, the API Gateway event builder, the local
API emulator behind ``make serve`` and the helpers behind ``make invoke``."""
