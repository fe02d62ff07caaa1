# The service image: the API (default command) and, with another command, the worker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY schema ./schema
COPY indexers ./indexers
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 ikl
USER ikl
EXPOSE 8000
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
