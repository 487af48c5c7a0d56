"""Already-read HTTP requests in the shape Authlib's grants and endpoints expect."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request


class _Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @property
    def data(self) -> dict[str, str]:
        return {key: items[0] for key, items in self._values.items() if items}

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, self._values)


class FormRequest(OAuth2Request):
    """An already-read HTTP request (query + form) in the shape Authlib expects."""

    # Set from the sign-in session before a consent grant is made (id_token claims); absent
    # otherwise, which the code grant reads as "now".
    auth_time: float | None
    amr: list[str]

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._query = query
        self._form = form
        values: dict[str, list[str]] = defaultdict(list)
        for key, value in [*query, *form]:
            values[key].append(value)
        self.payload = _Payload(dict(values))

    @property
    def args(self) -> dict[str, str]:
        return dict(self._query)

    @property
    def form(self) -> dict[str, str]:
        return dict(self._form)
