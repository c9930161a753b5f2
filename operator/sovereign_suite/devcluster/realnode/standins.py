"""Stand-in images for the real node, built from Debian packages (mmdebstrap) and PyPI, under the names the
rendered manifests reference. Each keeps the part of the upstream image's contract the renderer relies on
(entrypoint or command, user id, paths, environment names), cited from the upstream Dockerfile beside it.

They prove that what the operator renders runs: the same commands, users, mounts, probes and configuration, on a
real kubelet. They are not the upstream images: other builds of the same software (Debian's PostgreSQL 17, not
PGDG's 17.6; Debian's Python, not python:3.x-slim; no Element Web bundle, a placeholder page beside the rendered
config.json). docs/development.md, "Stand-in images", says what that does not prove.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ...api.backups import BACKUP_IMAGE
from .oci import ImageConfig

SUITE = "trixie"  # PostgreSQL 17 (the pinned major) and Redis 8 are trixie's
MIRROR = "http://deb.debian.org/debian"
REPO = Path(__file__).resolve().parents[4]  # the repository (constraints files are read from there at build time)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Recipe:
    name: str  # the image reference pods ask for
    packages: tuple[str, ...]
    config: ImageConfig
    users: tuple[tuple[str, int, int, str], ...] = ()  # (name, uid, gid, home), before packages are installed
    pip: tuple[str, ...] = ()  # requirements installed from PyPI into /usr/local
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (content, mode)
    script: str = ""  # run in the root filesystem (chroot) after packages, pip and files
    suite: str = SUITE  # the Debian release of the root filesystem
    constraints: str = ""  # a pip constraints file (path from the repository's root) the pip install obeys

    @property
    def slug(self) -> str:
        return self.name.split("/")[-1].replace(":", "-")

    def key(self) -> str:
        """Changes whenever an input changes (the image is rebuilt then, and only then)."""
        data = [self.suite, MIRROR, self.name, self.packages, self.users, self.pip, sorted(self.files.items()),
                self.script, self.config.as_oci()]
        if self.constraints:  # its content, not its name (recipes without one keep their key)
            data.append(self.constraints_text())
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:12]

    def constraints_text(self) -> str:
        return (REPO / self.constraints).read_text()
        return hashlib.sha256(data.encode()).hexdigest()[:12]


# ---- PostgreSQL --------------------------------------------------------------------------------------------
# docker-library/postgres 17/bookworm/Dockerfile: postgres is uid/gid 999 with home /var/lib/postgresql;
# PATH gains /usr/lib/postgresql/$PG_MAJOR/bin; the sample config listens on '*'; /var/run/postgresql is 3777;
# PGDATA=/var/lib/postgresql/data; ENTRYPOINT ["docker-entrypoint.sh"], CMD ["postgres"], STOPSIGNAL SIGINT.
# The entrypoint below keeps what the embedded mode's StatefulSet relies on (POSTGRES_USER, POSTGRES_PASSWORD or
# POSTGRES_PASSWORD_FILE as upstream's file_env reads them, POSTGRES_DB, POSTGRES_INITDB_ARGS, PGDATA; the first initdb's temporary server listens on the socket only;
# `host all all all scram-sha-256` appended to pg_hba.conf), run as the non-root user the pod sets.
PG_ENTRYPOINT = r"""#!/bin/bash
# Stand-in for docker-library/postgres's docker-entrypoint.sh (same environment contract; no initdb.d scripts).
set -Eeuo pipefail
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" = 'postgres' ]; then
  : "${PGDATA:?PGDATA is required}"
  user="${POSTGRES_USER:-postgres}"; db="${POSTGRES_DB:-$user}"
  mkdir -p "$PGDATA"; chmod 00700 "$PGDATA" || true
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
      echo 'error: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)' >&2; exit 1
    fi
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"; fi
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then echo 'error: POSTGRES_PASSWORD is not set' >&2; exit 1; fi
    eval 'initdb --username="$user" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"${POSTGRES_INITDB_ARGS:-}"
    printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
    PGUSER="$user" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    if [ "$db" != 'postgres' ]; then
      psql -v ON_ERROR_STOP=1 --username "$user" --no-password --dbname postgres \
        --set db="$db" <<<'CREATE DATABASE :"db" ;'
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.'
  fi
fi
exec "$@"
"""

POSTGRES = Recipe(
    name="docker.io/library/postgres:17.6-bookworm",
    packages=("postgresql-17",),
    users=(("postgres", 999, 999, "/var/lib/postgresql"),),
    files={"/usr/local/bin/docker-entrypoint.sh": (PG_ENTRYPOINT, 0o755)},
    script="""set -e
# Debian's postinst created a "main" cluster (upstream turns create_main_cluster off first): not part of the image
rm -rf /etc/postgresql/17 /var/lib/postgresql/17
sed -ri "s!^#?(listen_addresses)\\s*=\\s*\\S+.*!\\1 = '*'!" /usr/share/postgresql/17/postgresql.conf.sample
grep -F "listen_addresses = '*'" /usr/share/postgresql/17/postgresql.conf.sample
install -d -o postgres -g postgres -m 1777 /var/lib/postgresql
install -d -o postgres -g postgres -m 3777 /var/run/postgresql
install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
""",
    config=ImageConfig(
        entrypoint=["docker-entrypoint.sh"], cmd=["postgres"], stop_signal="SIGINT", ports=["5432/tcp"],
        env=[f"PATH={PATH}:/usr/lib/postgresql/17/bin", "PG_MAJOR=17", "PGDATA=/var/lib/postgresql/data",
             "LANG=C.UTF-8"],
    ),
)

# ---- Redis -------------------------------------------------------------------------------------------------
# docker-library/redis 8.2/alpine/Dockerfile: redis is uid 999 (group 1000); WORKDIR /data;
# ENTRYPOINT ["docker-entrypoint.sh"], CMD ["redis-server"]; the entrypoint prepends redis-server to flag-only
# arguments and, without a config file, passes --protected-mode no.
REDIS_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for docker-library/redis's docker-entrypoint.sh (no privilege drop: the pod sets the user).
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = 'redis-server' ]; then
  case " $* " in *" --protected-mode "*) ;; *) if [ "${2%.conf}" = "${2:-}" ]; then set -- "$@" --protected-mode no; fi ;; esac
  umask 0077
fi
exec "$@"
"""

REDIS = Recipe(
    name="docker.io/library/redis:8.2-alpine",
    packages=("redis-server",),
    users=(("redis", 999, 1000, "/data"),),
    files={"/usr/local/bin/docker-entrypoint.sh": (REDIS_ENTRYPOINT, 0o755)},
    script="install -d -o redis -g redis -m 0755 /data\n",
    config=ImageConfig(entrypoint=["docker-entrypoint.sh"], cmd=["redis-server"], workdir="/data",
                       ports=["6379/tcp"]),
)

# ---- Synapse -----------------------------------------------------------------------------------------------
# element-hq/synapse docker/Dockerfile: python:3.x-slim with Synapse installed under /usr/local;
# ENTRYPOINT ["/start.py"]; EXPOSE 8008/tcp 8009/tcp 8448/tcp; docker/start.py switches to UID/GID 991 by
# default. The renderer sets its own command (python3 -m synapse.app.homeserver ...) and uid 991, and its init
# container runs python3 with PyYAML (a Synapse dependency). Debian's python3-psycopg2 is the `postgres` extra.
SYNAPSE_VERSION = "1.163.2"
SYNAPSE_START = r"""#!/usr/bin/env python3
# Stand-in for element-hq/synapse docker/start.py: runs the homeserver on SYNAPSE_CONFIG_PATH (no `generate`).
import os
import sys

config = os.environ.get("SYNAPSE_CONFIG_PATH", os.environ.get("SYNAPSE_CONFIG_DIR", "/data") + "/homeserver.yaml")
args = [sys.executable, "-m", "synapse.app.homeserver", "--config-path", config, *sys.argv[1:]]
os.execv(sys.executable, args)
"""

SYNAPSE = Recipe(
    name=f"ghcr.io/element-hq/synapse:v{SYNAPSE_VERSION}",
    packages=("python3", "python3-pip", "python3-psycopg2", "ca-certificates"),
    users=(("synapse", 991, 991, "/data"),),
    pip=(f"matrix-synapse=={SYNAPSE_VERSION}",),
    files={"/start.py": (SYNAPSE_START, 0o755)},
    script="install -d -o synapse -g synapse /data\npython3 -c 'import synapse, psycopg2, yaml; print(synapse.__version__)'\n",
    config=ImageConfig(entrypoint=["/start.py"], ports=["8008/tcp", "8009/tcp", "8448/tcp"]),
)

# The previous release's Synapse (api/releases.yaml 2024.01, api/image_pins.py OLDER_PINS): the same recipe on the
# Debian release and Python its image was built on (element-hq/synapse v1.99.0 docker/Dockerfile: ARG
# PYTHON_VERSION=3.11, FROM python:${PYTHON_VERSION}-slim-bookworm; bookworm's python3 is 3.11), with the
# dependency versions its poetry.lock fixes (tests/data/synapse-constraints/1.99.0.txt: v1.99.0 does not import with
# today's prometheus-client). Built for tests/cluster/test_real_node_release_upgrade.py.
SYNAPSE_PREVIOUS_VERSION = "1.99.0"
SYNAPSE_PREVIOUS = Recipe(
    name=f"ghcr.io/element-hq/synapse:v{SYNAPSE_PREVIOUS_VERSION}",
    packages=SYNAPSE.packages,
    users=SYNAPSE.users,
    pip=(f"matrix-synapse=={SYNAPSE_PREVIOUS_VERSION}",),
    files=SYNAPSE.files,
    script=SYNAPSE.script,
    config=SYNAPSE.config,
    suite="bookworm",
    constraints=f"tests/data/synapse-constraints/{SYNAPSE_PREVIOUS_VERSION}.txt",
)

# ---- Element Web (nginx) -----------------------------------------------------------------------------------
# element-hq/element-web Dockerfile: nginx:alpine-slim, the app in /app, /usr/share/nginx/html a symlink to /app,
# the pid file in /tmp, USER nginx (uid 101), ENV ELEMENT_WEB_PORT=80; the nginx image's entrypoint
# (/docker-entrypoint.sh; CMD ["nginx", "-g", "daemon off;"]; STOPSIGNAL SIGQUIT) runs envsubst on
# /etc/nginx/templates unless NGINX_ENVSUBST_TEMPLATE_DIR does not exist (the renderer sets /nonexistent and
# mounts its own conf.d/default.conf, config.json and well-known files). Here: Debian's nginx, and a placeholder
# page instead of Element Web's JavaScript bundle (not in Debian nor PyPI).
NGINX_CONF = """\
# Stand-in for the nginx image's /etc/nginx/nginx.conf (pid and temporary files where a non-root user writes).
worker_processes auto;
error_log stderr notice;
pid /tmp/nginx.pid;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path /var/cache/nginx/client_temp;
    proxy_temp_path /var/cache/nginx/proxy_temp;
    fastcgi_temp_path /var/cache/nginx/fastcgi_temp;
    uwsgi_temp_path /var/cache/nginx/uwsgi_temp;
    scgi_temp_path /var/cache/nginx/scgi_temp;
    include /etc/nginx/conf.d/*.conf;
}
"""
NGINX_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the nginx image's /docker-entrypoint.sh: envsubst of $NGINX_ENVSUBST_TEMPLATE_DIR (default
# /etc/nginx/templates) into conf.d when that folder exists, then the command.
set -e
dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
if [ -d "$dir" ] && command -v envsubst >/dev/null; then
  for t in "$dir"/*.template; do [ -e "$t" ] || continue
    envsubst < "$t" > "/etc/nginx/conf.d/$(basename "$t" .template)"; done
fi
exec "$@"
"""
ELEMENT_INDEX = ("<!doctype html><title>Element (stand-in)</title><p>Stand-in for Element Web: this page replaces "
                 "the JavaScript bundle; <a href=\"config.json\">config.json</a> is the rendered one.</p>\n")

ELEMENT = Recipe(
    name="ghcr.io/element-hq/element-web:v1.11.110",
    packages=("nginx",),
    users=(("nginx", 101, 101, "/nonexistent"),),
    files={"/etc/nginx/nginx.conf": (NGINX_CONF, 0o644), "/docker-entrypoint.sh": (NGINX_ENTRYPOINT, 0o755),
           "/app/index.html": (ELEMENT_INDEX, 0o644), "/app/version": ("stand-in\n", 0o644)},
    script="""set -e
rm -rf /usr/share/nginx/html /etc/nginx/sites-enabled /etc/nginx/conf.d/*
ln -s /app /usr/share/nginx/html
install -d -o nginx -g root -m 0775 /var/cache/nginx /etc/nginx/conf.d
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log
nginx -t -c /etc/nginx/nginx.conf
""",
    config=ImageConfig(entrypoint=["/docker-entrypoint.sh"], cmd=["nginx", "-g", "daemon off;"], user="101",
                       stop_signal="SIGQUIT", ports=["80/tcp"], env=[f"PATH={PATH}", "ELEMENT_WEB_PORT=80"]),
)

# ---- LiteLLM gateway ---------------------------------------------------------------------------------------
# BerriAI/litellm Dockerfile: WORKDIR /app; EXPOSE 4000/tcp; ENTRYPOINT ["litellm"] (later releases wrap it in
# docker/prod_entrypoint.sh, which execs litellm with the same arguments); CMD ["--port", "4000"]. The renderer
# passes args [--config, /run/litellm/config.yaml, --port, 4000] and HOME=/tmp, and runs it as uid 1000; its init
# container runs `python3 /etc/litellm/write-config.py ...` in the same image (Debian's python3 here, with PyYAML
# from litellm's dependencies), which writes that config with the keys.
LITELLM_VERSION = "1.77.7"
LITELLM = Recipe(
    name=f"ghcr.io/berriai/litellm:v{LITELLM_VERSION}-stable",
    packages=("python3", "python3-pip", "ca-certificates"),
    pip=(f"litellm[proxy]=={LITELLM_VERSION}",),
    script="install -d -m 0755 /app\nlitellm --version\n",
    config=ImageConfig(entrypoint=["litellm"], cmd=["--port", "4000"], workdir="/app", ports=["4000/tcp"]),
)

# ---- the real node's cluster DNS (dns.py; not a stand-in: the local cluster's own kube-dns) -----------------
DNS = Recipe(
    name="sovereign-suite.local/realnode-dns:1",
    packages=("python3",),
    files={"/usr/local/bin/realnode-dns.py": ((Path(__file__).parent / "dns.py").read_text(), 0o755)},
    config=ImageConfig(entrypoint=["python3", "/usr/local/bin/realnode-dns.py"]),
)

# ---- the backup job (not a stand-in: the project's own image, Dockerfile.backup) ---------------------------
# The same contents as Dockerfile.backup: Debian's PostgreSQL 17 client, age and Python, and the
# backup program's files from this package under /opt/sovereign-suite-backup, and the LoRA adapter loader
# (components/llm/adapters.py), which runs from the same image.
_BACKUP_SRC = Path(__file__).resolve().parents[2]  # operator/sovereign_suite
_BACKUP_DIR = "/opt/sovereign-suite-backup/sovereign_suite"
BACKUP = Recipe(
    name=BACKUP_IMAGE,
    packages=("postgresql-client-17", "age", "python3", "ca-certificates"),
    files={f"{_BACKUP_DIR}/{rel}": ((_BACKUP_SRC / rel).read_text(), 0o644)
           for rel in ("__init__.py", "backup/__init__.py", "backup/program.py", "backup/restore.py",
                       "backup/s3.py", "adapterloader/__init__.py", "adapterloader/program.py")},
    script="PYTHONPATH=/opt/sovereign-suite-backup python3 -c 'import sovereign_suite.backup.program, "
           "sovereign_suite.adapterloader.program'\n"
           "pg_dump --version\nage --version\n",
    config=ImageConfig(cmd=["python3", "-m", "sovereign_suite.backup.program", "/etc/backup/config/config.json"],
                       user="991:991", env=[f"PATH={PATH}", "PYTHONPATH=/opt/sovereign-suite-backup",
                                           "PYTHONDONTWRITEBYTECODE=1"]),
)

# Imported only by the tests that ask for them (not among build.built(), which a real node imports by default: an
# image no pod of the current release runs would only add seconds of import to every real-node cluster)
ON_DEMAND = frozenset({"synapse-previous"})
RECIPES = {"postgres": POSTGRES, "redis": REDIS, "synapse": SYNAPSE, "synapse-previous": SYNAPSE_PREVIOUS,
           "element-web": ELEMENT, "litellm": LITELLM,
           "dns": DNS,
           "backup": BACKUP}
