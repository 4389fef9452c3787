# syntax=docker/dockerfile:1
# Build: a static, pure-Go binary (SQLite is pure Go too, so no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# What `opsvc version` and opsvc_build_info say (.git is not in the context).
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/opsvc ./cmd/opsvc

# Run: no shell, no package manager, a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/opsvc /opsvc
USER nonroot:nonroot
WORKDIR /home/nonroot
ENV LISTEN_ADDR=:8080 \
    DATABASE_URL=sqlite:/home/nonroot/operations.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/opsvc", "healthcheck"]
ENTRYPOINT ["/opsvc"]
