from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The project package as an app: for its migrations (databases of earlier releases migrate
    forward through them) and the admin dashboard's template tag. It has no models."""

    name = "gateway"
    verbose_name = "Gateway"
