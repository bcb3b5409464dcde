"""A real S3 server on loopback (moto's server mode) for tests of object-store outputs.

The server speaks the S3 protocol over HTTP, so everything goes through s3fs, botocore and
the network stack as against a bucket; only the storage behind it is in memory.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BUCKET = "dicepipe-test"


@dataclass(frozen=True)
class S3Store:
    """A running server: its endpoint, the environment a process needs to reach it, and the
    URL of its bucket."""

    endpoint: str
    env: dict[str, str]
    url: str


@contextmanager
def s3_server() -> Iterator[S3Store]:
    """Start the server, point this process (and the children it starts) at it, create the
    bucket; stop it and restore the environment on exit."""
    import fsspec.config
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process, not per server: start from an empty store
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # fsspec reads FSSPEC_<PROTOCOL>_<OPTION> at import: every child process finds the store
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
    }
    saved_env = {name: os.environ.get(name) for name in env}
    saved_conf = fsspec.config.conf.get("s3")
    os.environ.update(env)
    fsspec.config.conf["s3"] = {**(saved_conf or {}), "endpoint_url": endpoint}
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        fsspec.filesystem("s3").mkdir(BUCKET)
        yield S3Store(endpoint, env, f"s3://{BUCKET}")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()
