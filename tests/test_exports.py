"""The package's one front door."""

import omnimind_trio


def test_all_is_sorted_and_every_name_exists() -> None:
    names = [name for name in omnimind_trio.__all__ if name != "__version__"]
    assert names == sorted(names)
    for name in omnimind_trio.__all__:
        assert hasattr(omnimind_trio, name), name


def test_embedding_api_is_exported() -> None:
    assert callable(omnimind_trio.open_daemon)
    assert omnimind_trio.Settings().port == 8000
    assert omnimind_trio.Settings().host == "127.0.0.1"
