"""Project configuration: settings, root URLs, the WSGI application and the Celery app."""
