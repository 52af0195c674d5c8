# vigil-operator on an empty base. The build context is a directory staged by
# images/stage.sh (images/build.sh does both): the binary, the C library it links (nothing
# for a static binary), the CA bundle and the user database. No shell, no package manager.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="vigil-operator" \
      org.opencontainers.image.description="Vigil's operator: ContainerMonitors, the cluster audit policy and the audit webhook collector" \
      org.opencontainers.image.source="https://github.com/vigil-dev/vigil" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY rootfs/ /
# It needs nothing the host owns: the API server, its own port, an emptyDir for spools.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/vigil-operator"]
CMD ["run"]
