# The cnode program in a container: built on Debian 12, run on Debian 12 slim with only the shared libraries it
# links (libuv, OpenSSL, libmicrohttpd; libei is linked in statically), as a non-root user. Configure it with CNODE_*
# variables (README, "Operations"); deploy/k8s/ runs it beside an Elixir app.
#   docker build -t cnode .
#   docker run --rm -e CNODE_NAME=cnode@127.0.0.1 -e CNODE_COOKIE=secret -p 8080:8080 cnode

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential erlang-dev libuv1-dev liburing-dev libc-ares-dev libssl-dev uthash-dev libmicrohttpd-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" BUILD=/out /out/cnode /out/cnode-epmd && strip /out/cnode /out/cnode-epmd

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libuv1 liburing2 libc-ares2 libssl3 libmicrohttpd12 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /home/cnode --create-home cnode
COPY --from=build /out/cnode /out/cnode-epmd /usr/local/bin/
USER 10001:10001
ENV HOME=/home/cnode \
    CNODE_HTTP_PORT=8080 \
    CNODE_LISTEN=9100
# EPMD (embedded in cnode when none runs), the distribution port, the HTTP endpoint.
EXPOSE 4369 9100 8080
ENTRYPOINT ["/usr/local/bin/cnode"]
