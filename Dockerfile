# syntax=docker/dockerfile:1
# Vigil: a static binary on a distroless base, running as a non-root user, with the data
# directory as a volume. Build: docker build -t vigil .

# The dashboard's third-party browser code (MQTT.js) comes from npm at build time.
FROM node:22-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json web/build.mjs ./
RUN npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /src/web/vendor/ web/vendor/
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/vigil ./cmd/vigil \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil /vigil
COPY --from=build --chown=65532:65532 /out/data /data
ENV VIGIL_DATA_DIR=/data \
    VIGIL_HTTP_ADDR=0.0.0.0:8080 \
    VIGIL_MQTT_ADDR=0.0.0.0:1883 \
    VIGIL_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080 1883
USER 65532:65532
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/vigil", "healthcheck"]
ENTRYPOINT ["/vigil"]
CMD ["serve"]
