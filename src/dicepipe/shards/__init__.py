"""Training shards: Parquet writer, sha256 manifest, dataset card and preview grids."""
