"""Per-request DataLoaders: one batched call per service per request, not one per item."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from thrive_gateway.auth.principal import Principal
from thrive_gateway.clients.api import Services
from thrive_gateway.clients.models import AskDTO, PersonDTO, ThanksDTO
from thrive_gateway.live.cache import TtlCache


class Loaders:
    """DataLoaders bound to one request's actor; people also go through a shared cache."""

    def __init__(
        self,
        services: Services,
        actor: Principal,
        *,
        people_cache: TtlCache[str, PersonDTO | None] | None = None,
    ) -> None:
        self._services = services
        self._actor = actor
        self._people_cache = people_cache
        self.people: DataLoader[str, PersonDTO | None] = DataLoader(load_fn=self._load_people)
        self.asks: DataLoader[str, AskDTO | None] = DataLoader(load_fn=self._load_asks)
        self.thanks: DataLoader[str, ThanksDTO | None] = DataLoader(load_fn=self._load_thanks)

    async def _load_people(self, ids: list[str]) -> Sequence[PersonDTO | None]:
        cache = self._people_cache
        found: dict[str, PersonDTO | None] = {}
        missing = ids
        if cache is not None:
            missing = []
            for person_id in ids:
                hit, value = cache.peek(person_id)
                if hit:
                    found[person_id] = value
                else:
                    missing.append(person_id)
        if missing:
            generation = cache.generation if cache is not None else 0
            loaded = {
                p.id: p for p in await self._services.recognition.people_batch(self._actor, missing)
            }
            for person_id in missing:
                found[person_id] = loaded.get(person_id)
                if cache is not None:
                    cache.put(person_id, loaded.get(person_id), generation=generation)
        return [found.get(i) for i in ids]

    async def _load_asks(self, ids: list[str]) -> Sequence[AskDTO | None]:
        loaded = {a.id: a for a in await self._services.recognition.asks_batch(self._actor, ids)}
        return [loaded.get(i) for i in ids]

    async def _load_thanks(self, ids: list[str]) -> Sequence[ThanksDTO | None]:
        batch = await self._services.recognition.thanks_batch(self._actor, ids)
        loaded = {t.id: t for t in batch}
        return [loaded.get(i) for i in ids]
