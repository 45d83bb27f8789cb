"""Query a sluice collection in a Qdrant server with the Python qdrant-client, as a retrieval
service would: the dense top-k at one dataset version, readable by one principal.

    python3 query_collection.py --url http://127.0.0.1:6334 --collection sluice-default \
        --version 3 --reader user:alice --reader group:hr --vector-file query.json

The query vector comes from `sluice embed "TEXT"` (the pipeline's own model; `query.json` is what
it prints). Prints the hits as JSON lines: chunk id, score, path, text. The README section
"Query the collection directly" walks through the same filter.
"""

import argparse
import json
from urllib.parse import urlparse

from qdrant_client import QdrantClient, models


def version_filter(version, readers):
    """Chunks visible at `version` (valid_from <= version < valid_to) that one of `readers` may
    read; no `readers`: every chunk (what sluice's local administrator sees)."""
    must = [
        models.FieldCondition(key="valid_from", range=models.Range(lte=version)),
        models.FieldCondition(key="valid_to", range=models.Range(gt=version)),
    ]
    if readers:
        must.append(models.FieldCondition(key="readers", match=models.MatchAny(any=readers)))
    return models.Filter(must=must)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's gRPC address")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--reader", action="append", default=[], help="a principal key, repeatable")
    parser.add_argument("--vector-file", required=True, help="what `sluice embed` printed")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()

    with open(args.vector_file) as file:
        vector = json.load(file)["vector"]
    address = urlparse(args.url)
    client = QdrantClient(
        host=address.hostname, grpc_port=address.port, prefer_grpc=True, https=address.scheme == "https"
    )
    hits = client.query_points(
        collection_name=args.collection,
        query=vector,
        using="dense",
        query_filter=version_filter(args.version, args.reader),
        limit=args.limit,
        with_payload=True,
    ).points
    for hit in hits:
        payload = hit.payload
        print(json.dumps({"chunk_id": payload["chunk_id"], "score": hit.score, "path": payload["path"],
                          "text": payload["text"]}))


if __name__ == "__main__":
    main()
