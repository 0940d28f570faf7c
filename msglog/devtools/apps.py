from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    name = "msglog.devtools"
    label = "devtools"
    verbose_name = "Developer tools"
