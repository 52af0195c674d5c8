"""An in-memory Kubernetes API for the tests of vigil-operator's controller and of the agent's
operator follower.

kmock's KubernetesEmulator keeps objects and serves list, watch, get, create, merge/JSON
patch and delete over HTTP, but stamps nothing on writes. A real API server does, and the
controller depends on it: kube-runtime's watcher resumes from `metadata.resourceVersion`,
the controller's generation predicate reads `metadata.generation`, and status writes go
through the `status` subresource, which must neither touch the spec nor bump the generation.
This shim adds exactly that, and nothing else:

- on create: `uid`, `resourceVersion`, `creationTimestamp`, `generation: 1` and the
  namespace from the URL; `status` dropped for resources with a status subresource;
- on patch: a new `resourceVersion`; `generation` + 1 when the spec changes; a patch of the
  main resource loses its `status`, a patch of `/status` keeps only `status`;
- errors carry the reasons clients test for (`NotFound`, `AlreadyExists`), not kmock's
  prose reasons, and no Python traceback;
- `GET /_shim/requests`: every request so far as `[method, path]`, for assertions such as
  "no status write when nothing changed";
- TokenReviews (`POST /apis/authentication.k8s.io/v1/tokenreviews`) answered from a table
  the test fills with `POST /_shim/tokens` (`{"TOKEN": {"username": ..., "groups": [...]}}`):
  a listed token is authenticated as its user, any other is not, as the API server's token
  authenticator answers;
- server-side apply conflicts: an apply patch (`application/apply-patch+yaml`) without
  `force=true` that gives a field another value than the one another field manager last
  applied to it gets `409 Conflict` and changes nothing. Lease-based leader election
  (kube-lease-manager) takes a free Lease that way, so two replicas cannot both take it.
  A later write of the field by any other kind of patch, and deleting the object, end
  that ownership; fields under `metadata` are not tracked.

What it still does not do (so the operator must not rely on it): PUT, label and field
selectors (every list and watch returns all objects of the resource; the operator filters
client side), the rest of server-side apply (an apply patch is merged like a merge patch:
fields the manager applied before and now leaves out stay, and no `managedFields` are
written) and optimistic concurrency (`metadata.resourceVersion` in a patch is not checked).

Usage: python3 shim.py [--port N]; prints `listening on http://127.0.0.1:PORT` once ready and
exits when its standard input closes, so a test that dies does not leave it behind.
"""

import argparse
import asyncio
import copy
import datetime
import itertools
import sys
import uuid

import aiohttp.web
import kmock

RESOURCES = {
    'vigil.dev/v1alpha1/containermonitors': kmock.ResourceInfo(
        namespaced=True, kind='ContainerMonitor', singular='containermonitor',
        shortnames={'cmon'}, subresources={'status'},
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
    'v1/configmaps': kmock.ResourceInfo(
        namespaced=True, kind='ConfigMap', singular='configmap',
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
    'v1/pods': kmock.ResourceInfo(
        namespaced=True, kind='Pod', singular='pod',
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
    'v1/nodes': kmock.ResourceInfo(
        namespaced=False, kind='Node', singular='node',
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
    'coordination.k8s.io/v1/leases': kmock.ResourceInfo(
        namespaced=True, kind='Lease', singular='lease',
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
    'events.k8s.io/v1/events': kmock.ResourceInfo(
        namespaced=True, kind='Event', singular='event',
        verbs={'get', 'list', 'watch', 'create', 'patch', 'delete'}),
}

# kmock's only 409 is a create of an existing object.
REASONS = {404: 'NotFound', 409: 'AlreadyExists'}

# Resources whose `status` is only written through the status subresource.
WITH_STATUS_SUBRESOURCE = {('vigil.dev', 'containermonitors')}

APPLY_PATCH = 'application/apply-patch+yaml'


class Shim(kmock.KubernetesEmulator):
    """The emulator, with the metadata a real API server stamps on writes."""

    _versions = itertools.count(1)
    # Server-side apply: {(resource, namespace, name): {field path: (manager, value applied)}}.
    _applied = {}
    # Every request so far, as [method, path].
    _log = []

    async def _handle(self, request):
        self._log.append([str(request.method.value), request.url.path])
        try:
            return await self._serve(request)
        finally:
            # kmock matches each request against every request it keeps, which makes a run
            # of thousands of requests quadratic; it needs only those still being served.
            if request in self._requests:
                self._requests.remove(request)

    # TokenReview answers: {token: {"username": ..., "groups": [...]}}.
    _tokens = {}

    async def _serve(self, request):
        if request.url.path == '/_shim/requests':
            return aiohttp.web.json_response(self._log)
        if request.url.path == '/_shim/tokens' and isinstance(request.data, dict):
            self._tokens.update(request.data)
            return aiohttp.web.json_response({})
        if request.url.path == '/apis/authentication.k8s.io/v1/tokenreviews':
            review = request.data if isinstance(request.data, dict) else {}
            token = (review.get('spec') or {}).get('token') or ''
            user = self._tokens.get(token)
            status = {'authenticated': True, 'user': {'username': user['username'], 'groups': user.get('groups', [])}} \
                if user else {'authenticated': False, 'error': 'invalid bearer token'}
            return aiohttp.web.json_response(
                {**review, 'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenReview', 'status': status},
                status=201)
        resource = request.resource
        if resource is not None and request.name is not None and request.action in (
                kmock.action.UPDATE, kmock.action.DELETE):
            conflict = self._track_fields(request)
            if conflict is not None:
                return conflict
        if resource is not None and isinstance(request.data, dict):
            kind = (resource.group, resource.plural)
            if request.action == kmock.action.CREATE:
                self._stamp_create(request, kind)
            elif request.action == kmock.action.UPDATE and request.name is not None:
                self._stamp_patch(request, kind)
        return await super()._handle(request)

    def _track_fields(self, request):
        """Checks an apply patch against the fields other managers applied, and records who
        applied what; returns the 409 response of a conflict. Runs without awaiting, so two
        requests never interleave between the check and the record."""
        key = (request.resource, request.namespace, request.name)
        if request.action == kmock.action.DELETE or not isinstance(request.data, dict):
            # A deletion, or a JSON patch whose effect is not worth working out here.
            self._applied.pop(key, None)
            return None
        if self._current(request) is None:
            return None  # kmock answers 404
        owners = self._applied.setdefault(key, {})
        fields = dict(_leaves({k: v for k, v in request.data.items() if k != 'metadata'}))
        content_type = next(
            (v for k, v in request.headers.items() if k.lower() == 'content-type'), '')
        if not content_type.startswith(APPLY_PATCH):
            for path in fields:
                _disown(owners, path)
            return None
        manager = request.params.get('fieldManager', '')
        if request.params.get('force') != 'true':
            conflicts = sorted(
                (owner, '.' + '.'.join(path))
                for path, value in fields.items()
                if value is not None and path in owners
                for owner, applied in [owners[path]]
                if owner != manager and applied != value)
            if conflicts:
                listed = ', '.join(f'conflict with "{o}": {p}' for o, p in conflicts)
                return aiohttp.web.json_response({
                    'apiVersion': 'v1',
                    'kind': 'Status',
                    'metadata': {},
                    'code': 409,
                    'status': 'Failure',
                    'reason': 'Conflict',
                    'message': f'Apply failed with {len(conflicts)} conflicts: {listed}',
                }, status=409)
        for path, value in fields.items():
            _disown(owners, path)
            if value is not None:
                owners[path] = (manager, copy.deepcopy(value))
        return None

    async def _render_error(self, exc):
        if isinstance(exc, kmock.KubernetesError):
            return aiohttp.web.json_response({
                'apiVersion': 'v1',
                'kind': 'Status',
                'metadata': {},
                'code': exc.status,
                'status': 'Failure',
                'reason': REASONS.get(exc.status, exc.reason),
                'message': exc.message or repr(exc),
            }, status=exc.status)
        return await super()._render_error(exc)

    def _next_version(self):
        return str(next(self._versions))

    def _stamp_create(self, request, kind):
        meta = request.data.setdefault('metadata', {})
        if request.namespace:
            meta['namespace'] = request.namespace
        meta['uid'] = str(uuid.uuid4())
        meta['resourceVersion'] = self._next_version()
        meta['creationTimestamp'] = datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')
        meta['generation'] = 1
        if kind in WITH_STATUS_SUBRESOURCE:
            request.data.pop('status', None)

    def _stamp_patch(self, request, kind):
        patch = request.data
        if kind in WITH_STATUS_SUBRESOURCE:
            if request.subresource == 'status':
                for key in list(patch):
                    if key != 'status':
                        del patch[key]
            else:
                patch.pop('status', None)
        old = self._current(request)
        meta = patch.setdefault('metadata', {})
        # An apply or merge patch may carry the old resourceVersion; the server's wins.
        meta['resourceVersion'] = self._next_version()
        if old is not None and 'spec' in patch:
            new_spec = _merge(copy.deepcopy(old.get('spec') or {}), patch['spec'] or {})
            generation = (old.get('metadata') or {}).get('generation') or 1
            meta['generation'] = generation + 1 if new_spec != old.get('spec') else generation

    def _current(self, request):
        for (resource, namespace, name), obj in self.objects.items():
            if (resource == request.resource and namespace == request.namespace
                    and name == request.name and not obj.deleted):
                return obj.raw
        return None


def _leaves(obj, prefix=()):
    """(path, value) of every field that is not an object; empty objects and lists are
    values."""
    for key, value in obj.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _disown(owners, path):
    """Forgets who applied `path`, what is inside it and what contains it."""
    for owned in [p for p in owners if p[:len(path)] == path or path[:len(p)] == p]:
        del owners[owned]


def _merge(target, patch):
    """RFC 7386 JSON merge patch, as the emulator applies it."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value)
    return target


async def main(port):
    async with Shim() as api, kmock.Server(api, port=port) as server:
        for key, info in RESOURCES.items():
            api.resources[key] = info
        print(f'listening on http://127.0.0.1:{server.port}', flush=True)
        loop = asyncio.get_running_loop()
        # Standard input closing is the signal to stop: the test holds the pipe.
        await loop.run_in_executor(None, sys.stdin.buffer.read)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=None, help='port (default: any free one)')
    asyncio.run(main(parser.parse_args().port))
