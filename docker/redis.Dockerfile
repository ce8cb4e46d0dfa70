# Redis for the cluster profile of docker/compose.yaml: Debian's redis-server
# on the same debian:bookworm-slim base as docker/Dockerfile, run as the
# package's own user, with its data in a volume. The settings goroutined
# needs (AOF, noeviction) are the compose service's command, where they are
# read next to the nodes that rely on them.
#   podman build -f docker/redis.Dockerfile -t goroutined-redis docker
FROM debian:bookworm-slim
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 0750 /var/lib/redis
USER redis
WORKDIR /var/lib/redis
VOLUME /var/lib/redis
EXPOSE 6379
ENTRYPOINT ["redis-server"]
