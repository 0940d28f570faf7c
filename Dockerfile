# The production image: one image for web (gunicorn), worker and beat.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY pyproject.toml README.md ./
COPY msglog ./msglog
COPY companies ./companies
COPY templates_app ./templates_app
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0
RUN useradd --system --home /app msglog && mkdir -p /app/var/media && chown -R msglog /app/var
USER msglog
EXPOSE 8000
CMD ["gunicorn", "msglog.config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--worker-class", "gthread", "--threads", "8", "--keep-alive", "30"]
