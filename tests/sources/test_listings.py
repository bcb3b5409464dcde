import fsspec

from dicepipe.sources.listings import cached_listing, file_identity, parallel_map


def test_the_identity_is_size_and_version_or_time_never_bytes(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(b"x" * 10)
    identity = file_identity(str(path))
    assert identity["size"] == 10 and identity["url"] == str(path) and "mtime" in identity
    fsspec.filesystem("memory").pipe("/dicepipe-listings/b.tar", b"yy")
    remote = file_identity("memory://dicepipe-listings/b.tar")
    assert remote["size"] == 2 and set(remote) == {"url", "size", "created"}


def test_a_listing_is_made_once_and_a_damaged_one_again(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(b"x")
    made = []

    def make(url):
        made.append(url)
        return {"stems": ["s"]}, True

    folder = tmp_path / "listings"
    assert cached_listing(str(path), folder, "t", make) == {"stems": ["s"]}
    assert cached_listing(str(path), folder, "t", make) == {"stems": ["s"]}
    assert made == [str(path)]
    (listing,) = folder.glob("t-*.json")
    listing.write_text("{not json")
    assert cached_listing(str(path), folder, "t", make) == {"stems": ["s"]}
    assert len(made) == 2


def test_a_listing_not_to_keep_is_not_written(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(b"x")
    listing = cached_listing(str(path), tmp_path / "l", "t", lambda url: ({"cut": True}, False))
    assert listing == {"cut": True} and not (tmp_path / "l").exists()


def test_parallel_map_keeps_the_order():
    urls = [f"u{i}" for i in range(40)]
    assert parallel_map(str.upper, urls) == [u.upper() for u in urls]
