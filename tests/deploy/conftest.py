import pytest

from tests.deploy.manifests import MissingKubectl, kubectl


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    """A missing kubectl fails the deploy tests with how to install it; it never skips them."""
    try:
        return kubectl()
    except MissingKubectl as exc:
        pytest.fail(str(exc), pytrace=False)
