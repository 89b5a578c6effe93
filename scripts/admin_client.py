"""A thin client for the admin API (/api/v1): one method per call the variant script makes.

Every failure is an ``AdminError`` carrying the API's own ``{"error": ...}`` message,
so the command line can show what the router said instead of an HTTP status.
"""

from __future__ import annotations

from typing import Any

import httpx


class AdminError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AdminClient:
    def __init__(self, admin_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.admin_url = admin_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=f"{self.admin_url}/api/v1", timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        if not self.token:  # an empty bearer is not even a valid header: say what is missing
            raise AdminError("no admin token: pass --token or set CROUPIER_ADMIN_TOKEN (the local stack "
                             "prints it and keeps it in run/stack.json)")
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach the admin API at {self.admin_url} ({exc}); is the stack running? "
                             f"(--admin-url or CROUPIER_ADMIN_URL)") from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_error:
            message = data.get("error") if isinstance(data, dict) else None
            raise AdminError(message or f"{method} {path}: HTTP {response.status_code}", response.status_code)
        return data

    def experiments(self) -> list[dict]:
        return self._call("GET", "/experiments")["experiments"]

    def experiment(self, experiment: str) -> dict:
        return self._call("GET", f"/experiments/{experiment}")

    def create_experiment(self, experiment: dict) -> dict:
        return self._call("POST", "/experiments", experiment)

    def delete_experiment(self, experiment: str) -> None:
        self._call("DELETE", f"/experiments/{experiment}")

    def update_experiment(self, experiment: str, changes: dict) -> dict:
        return self._call("PATCH", f"/experiments/{experiment}", changes)

    def stats(self, experiment: str) -> dict:
        return self._call("GET", f"/experiments/{experiment}/stats")

    def add_variant(self, experiment: str, variant: dict) -> dict:
        return self._call("POST", f"/experiments/{experiment}/variants", variant)

    def update_variant(self, experiment: str, variant_id: str, changes: dict) -> dict:
        return self._call("PATCH", f"/experiments/{experiment}/variants/{variant_id}", changes)

    def remove_variant(self, experiment: str, variant_id: str) -> None:
        self._call("DELETE", f"/experiments/{experiment}/variants/{variant_id}")

    def model_prior(self, experiment: str, strength: float) -> dict:
        return self._call("GET", f"/experiments/{experiment}/model/prior?strength={strength!r}")

    def promote(self, experiment: str, variant_id: str) -> dict:
        return self._call("POST", f"/experiments/{experiment}/promote", {"variant": variant_id})
