"""A minimal S3 client for the backup program: the five calls it needs, signed with AWS Signature Version 4.

Standard library only, on purpose: the backup image carries Debian's PostgreSQL client and `age`, not an SDK,
and boto3/botocore cannot live in the operator's environment (botocore pins python-dateutil<3, the pinned
kubernetes client needs >=3). Path-style addressing (``<endpoint>/<bucket>/<key>``), which every S3-compatible
server accepts (Ceph RGW, SeaweedFS, MinIO, Garage, the clouds' own). The signature follows the AWS
documentation "Signature Version 4 signing process" (canonical request, string to sign, HMAC chain); the
payload hash is sent (``x-amz-content-sha256``) so a server can check every byte.

Objects above ``PART_SIZE`` go up as a multipart upload (a single PUT is limited to 5 GiB by S3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import BinaryIO, Iterator

PART_SIZE = 64 * 1024 * 1024
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
TIMEOUT = 300


class S3Error(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _quote(s: str) -> str:
    return urllib.parse.quote(s, safe="-_.~/")


@dataclass(frozen=True)
class Client:
    endpoint: str  # http(s)://host[:port]
    bucket: str
    region: str
    credentials: Credentials

    # ---- signing ----------------------------------------------------------------------------------------
    def _request(self, method: str, key: str = "", query: dict[str, str] | None = None, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        url = urllib.parse.urlsplit(self.endpoint)
        path = f"/{self.bucket}" + (f"/{key}" if key else "")
        now = dt.datetime.now(dt.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        hdrs = {"host": url.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash,
                **{k.lower(): v for k, v in (headers or {}).items()}}
        if body:  # urllib would say application/x-www-form-urlencoded, which servers may parse as a form
            hdrs.setdefault("content-type", "application/octet-stream")
        canonical_query = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted((query or {}).items()))
        signed = ";".join(sorted(hdrs))
        canonical = "\n".join([method, _quote(path), canonical_query,
                               "".join(f"{k}:{hdrs[k].strip()}\n" for k in sorted(hdrs)), signed, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = _sign(("AWS4" + self.credentials.secret_key).encode(), day)
        for part in (self.region, "s3", "aws4_request"):
            k = _sign(k, part)
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{scope}, "
                                 f"SignedHeaders={signed}, Signature={signature}")
        del hdrs["host"]
        full = f"{url.scheme}://{url.netloc}{_quote(path)}" + (f"?{canonical_query}" if canonical_query else "")
        req = urllib.request.Request(full, data=body if method in ("PUT", "POST") else None, method=method,
                                     headers=hdrs)
        # no proxy from the environment: the object storage is the country's, reached directly
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=TIMEOUT) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            raise S3Error(err.code, err.read().decode(errors="replace")[:500]) from None

    # ---- the calls the program makes -------------------------------------------------------------------
    def put_file(self, key: str, path: str) -> int:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size <= PART_SIZE:
                self._request("PUT", key, body=f.read())
            else:
                self._multipart(key, f)
        return size

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._request("PUT", key, body=data, headers={"content-type": content_type})

    def _multipart(self, key: str, f: BinaryIO) -> None:
        _, _, body = self._request("POST", key, query={"uploads": ""})
        upload_id = ET.fromstring(body).findtext(f"{NS}UploadId") or ET.fromstring(body).findtext("UploadId")
        if not upload_id:
            raise S3Error(0, f"no UploadId in the answer to CreateMultipartUpload of {key}")
        parts = []
        try:
            number = 1
            while chunk := f.read(PART_SIZE):
                _, headers, _ = self._request("PUT", key, query={"partNumber": str(number), "uploadId": upload_id},
                                              body=chunk)
                etag = {k.lower(): v for k, v in headers.items()}.get("etag", "")
                parts.append(f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>")
                number += 1
            done = f"<CompleteMultipartUpload>{''.join(parts)}</CompleteMultipartUpload>".encode()
            self._request("POST", key, query={"uploadId": upload_id}, body=done)
        except BaseException:
            self._request("DELETE", key, query={"uploadId": upload_id})  # no orphaned parts left billed
            raise

    def get(self, key: str) -> bytes:
        return self._request("GET", key)[2]

    def delete(self, key: str) -> None:
        self._request("DELETE", key)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix`` (ListObjectsV2, following continuation tokens)."""
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self._request("GET", query=query)[2])
            ns = NS if root.tag.startswith(NS) else ""
            for item in root.findall(f"{ns}Contents"):
                yield item.findtext(f"{ns}Key") or "", int(item.findtext(f"{ns}Size") or 0)
            if (root.findtext(f"{ns}IsTruncated") or "false").lower() != "true":
                return
            token = root.findtext(f"{ns}NextContinuationToken")
