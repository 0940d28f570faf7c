from django.apps import AppConfig


class MsglogConfig(AppConfig):
    name = "msglog"
    verbose_name = "Message log"
