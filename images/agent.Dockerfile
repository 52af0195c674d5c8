# vigil-agent on an empty base. The build context is a directory staged by images/stage.sh
# (images/build.sh does both): the binary, the C library it links (nothing for a static
# binary), the CA bundle and the user database. No shell, no package manager.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="vigil-agent" \
      org.opencontainers.image.description="Vigil's node agent: audit log, container runtime events and container logs to a SIEM" \
      org.opencontainers.image.source="https://github.com/vigil-dev/vigil" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY rootfs/ /
# Root: the agent reads the host's root-owned logs (audit.log is 0600) and runtime sockets.
# The chart drops every capability, so root reads what root owns and nothing more.
USER 0:0
ENTRYPOINT ["/usr/local/bin/vigil-agent"]
CMD ["run", "--config", "/etc/vigil/config/agent.yaml"]
