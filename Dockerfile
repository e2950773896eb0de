# vgrid itself, as a daemon: `vgrid serve` in a FROM-scratch image (no base
# image can be pulled; the static binary is built beforehand by
# scripts/build-vgrid-image.sh). It drives the host's Docker engine through
# the mounted socket and keeps its store (and token) on a volume:
#
#   docker run -d --name vgrid -v /var/run/docker.sock:/var/run/docker.sock \
#     -v vgrid-data:/data -v /path/to/profiles:/path/to/profiles \
#     -p 127.0.0.1:8321:8321 vgrid:latest
#
# Profiles must be mounted at the same path as on the host, because compose
# files name host paths (binds, env files). The token is /data/token.
# Inside the container the daemon listens on every address of its own
# network namespace in plain HTTP (--insecure-listen): publish the port on
# the host's loopback only, as above, or run it with --tls-cert/--tls-key
# (on a mounted volume) to publish it further.
FROM scratch
COPY vgrid /usr/local/bin/vgrid
ENV VGRID_STORE=/data/vgrid.db HOME=/data
VOLUME /data
EXPOSE 8321
ENTRYPOINT ["/usr/local/bin/vgrid", "serve", "--listen", "0.0.0.0:8321", "--insecure-listen", "--token-file", "/data/token"]
