# Caddy with the caddy-audit module, running Caddyfile.example.
#
#   docker build -t caddy-audit .
#   docker run -d --name audit -p 8080:8080 -p 127.0.0.1:9180:9180 \
#       -v caddy-audit-data:/data caddy-audit
#   docker exec audit cat /data/audit/bootstrap-admin.key
#
# In the image Caddyfile.example keeps the audit data in the /data volume
# (AUDIT_DATA_DIR=/data/audit, next to Caddy's own /data/caddy) and the admin
# API listens on every interface of the container (AUDIT_ADMIN_BIND=0.0.0.0),
# so that it can be published: publish port 9180 to a trusted network only,
# as above. For your own application, mount your Caddyfile over the example:
#   -v "$PWD/Caddyfile:/etc/caddy/Caddyfile:ro"

# The official images' tag. (Not named CADDY_VERSION: the builder image
# sets that variable itself, to "v<tag>".)
ARG CADDY_TAG=2.11.9

FROM caddy:${CADDY_TAG}-builder AS builder
ARG CADDY_TAG
# As in xcaddy.sh: "|" lets the go command get past a proxy's 403 for our
# unpublished module path to the local replacement. --build-arg GOPROXY=...
# to use your own proxy.
ARG GOPROXY=https://proxy.golang.org|off
# GOTOOLCHAIN=auto fetches the Go release go.mod asks for if the image's is
# older; no setcap, because every listener is on a port above 1024.
ENV GOPROXY=${GOPROXY} GOTOOLCHAIN=auto XCADDY_SETCAP=0 XCADDY_SKIP_CLEANUP=0
RUN GOBIN=/usr/local/bin go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
COPY . /src
RUN /usr/local/bin/xcaddy build "v${CADDY_TAG}" --output /usr/bin/caddy \
	--with github.com/caddy-audit/caddy-audit=/src \
	&& /usr/bin/caddy list-modules | grep -qx http.handlers.audit

FROM caddy:${CADDY_TAG}
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
COPY Caddyfile.example /etc/caddy/Caddyfile
ENV AUDIT_DATA_DIR=/data/audit AUDIT_ADMIN_BIND=0.0.0.0
# An unprivileged user owning Caddy's state (/config) and the data volume.
# (A bind-mounted host directory for /data must be writable by uid 10001.)
RUN addgroup -S -g 10001 caddy \
	&& adduser -S -D -H -h /data -u 10001 -G caddy caddy \
	&& mkdir -p /data/audit /config/caddy \
	&& chown -R 10001:10001 /data /config
USER 10001:10001
VOLUME /data
EXPOSE 8080 9180
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
