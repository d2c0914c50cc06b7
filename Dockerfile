# chainsettle daemon image. Contracts are compiled ahead and committed, so
# the image needs neither node nor solc.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config config
COPY db db
COPY indexer indexer
COPY settlement settlement
COPY api api
COPY daemon daemon
COPY contracts/artifacts contracts/artifacts
# The payout contract's artifact lands in <prefix>/share/chainsettle (data-files).
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/chainsettle --create-home chainsettle
COPY --from=build /install /usr/local
USER chainsettle
WORKDIR /var/lib/chainsettle
ENV CHAINSETTLE_CONFIG=/etc/chainsettle/chainsettle.toml \
    CHAINSETTLE_LOG__FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)" || exit 1
ENTRYPOINT ["chainsettle"]
CMD ["run"]
