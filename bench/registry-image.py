#!/usr/bin/env python3
"""Write an OCI image layout of random data for bench/registry.sh.

usage: registry-image.py DIR --layers N --mib M

Each layer is a tar holding one file of M MiB of random bytes, wrapped in gzip with
compression level 0 (stored blocks): the media type is the usual tar+gzip, so clients copy
the layers as they are, and the benchmark measures the registries rather than a compressor.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--mib", type=int, default=50)
    p.add_argument("--tag", default="bench")
    a = p.parse_args()
    blobs = os.path.join(a.dir, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    layers, diff_ids = [], []
    for i in range(a.layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = os.urandom(a.mib << 20)
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append(put(gzip.compress(raw, compresslevel=0, mtime=0),
                          "application/vnd.oci.image.layer.v1.tar+gzip"))
    config = put(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = put(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": layers,
    }).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest["annotations"] = {"org.opencontainers.image.ref.name": a.tag}
    with open(os.path.join(a.dir, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest]}, f)
    with open(os.path.join(a.dir, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    total = sum(l["size"] for l in layers) + config["size"] + manifest["size"]
    print(total)


if __name__ == "__main__":
    main()
