# fakeai in a container: the wheel (with the compiled kernel) is built in one stage, and only
# that wheel is installed in the slim runtime stage.
#
#   docker build -t fakeai .
#   docker run --rm -p 8000:8000 --shm-size=256m -e FAKEAI_TTFT_MS=20 fakeai
#
# Every setting can be given as a FAKEAI_* environment variable (see docs/settings.md).

FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY fakeai ./fakeai
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 fakeai
USER fakeai
WORKDIR /home/fakeai
ENV FAKEAI_PORT=8000 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('FAKEAI_PORT', '8000'), timeout=2)"
ENTRYPOINT ["fakeai", "serve", "--host", "0.0.0.0"]
