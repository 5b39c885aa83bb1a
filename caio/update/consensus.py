"""Two-party approval (TAP 4): a release counts only when enough repositories sign its bytes.

The host trusts several TUF repositories, each with its own root, keys and
cache (``RepositoryMap``). Every check refreshes all of them: one that cannot
be refreshed (unreachable, expired, a replayed timestamp) fails the whole
check, naming it, and never leaves fewer repositories deciding.

How the signed fields of one release combine, over the repositories that
agree on it (the same target path, length, hashes and signed version):

* it is offered only when at least ``threshold`` of the repositories of the
  mapping that decides its path agree; otherwise it is not offered, and asked
  for by name it fails with ``approval_missing`` (too few list it) or
  ``repositories_disagree`` (some list other bytes or another version);
* its channels are those every agreeing repository gives it;
* it is withdrawn when any agreeing repository withdraws it;
* its rollout reaches this host only when every agreeing repository's plan
  has reached it: at each moment the plan is the lowest of their percentages
  (the slowest plan wins), and it is paused when any of them is;
* it was released when the last of them released it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from packaging.version import Version
from tuf.api.metadata import TargetFile

from caio.core.errors import ErrorCode, UpdateError
from caio.core.repository_map import Mapping, RepositoryMap
from caio.core.rollout import MAX_STEPS, Rollout, Step
from caio.update.agreement import Agreement
from caio.update.repository import (
    ListedDelta,
    Release,
    RepositoryView,
    TrustedMetadataInfo,
    TrustedRepository,
)
from caio.update.transport import Transport


class Source:
    """One repository of the map: its mirrors (sharing one cache), tried in order."""

    def __init__(self, name: str, mirrors: list[TrustedRepository]) -> None:
        self.name = name
        self.mirrors = mirrors

    def trusted_metadata(self) -> TrustedMetadataInfo:
        return self.mirrors[0].trusted_metadata()

    def refresh(self) -> RepositoryView:
        """Raises: UpdateError naming this repository (the last mirror's failure)."""
        last = len(self.mirrors) - 1
        for n, mirror in enumerate(self.mirrors):
            try:
                return mirror.refresh()
            except UpdateError as e:
                # A verification failure is an answer: another mirror cannot undo it.
                if n < last and e.error_code in NETWORK_FAILURES:
                    continue
                failure = e
                break
        raise UpdateError(
            failure.error_code,
            f"repository {self.name!r}: {failure.message}",
            details=failure.details,
        ) from failure


NETWORK_FAILURES = frozenset(
    {ErrorCode.REPOSITORY_UNREACHABLE, ErrorCode.SLOW_RETRIEVAL, ErrorCode.REPOSITORY_UNAUTHORIZED}
)


class ConsensusView:
    """Verified views of every repository of the map, and the releases they agree on."""

    def __init__(self, views: dict[str, RepositoryView], repository_map: RepositoryMap) -> None:
        self.views = views
        self.map = repository_map
        self.agreements: dict[str, Agreement] = {}
        self.skipped: list[str] = [f"{n}: {s}" for n, v in views.items() for s in v.skipped]
        self._targets: dict[str, tuple[TargetFile, tuple[str, ...]]] = {}
        # By version: the uncompressed tar each agreeing repository signs (None: none).
        self._tars: dict[str, dict[str, object]] = {}
        self.releases: list[Release] = []
        versions = sorted({r.version for v in views.values() for r in v.releases})
        for version in versions:
            release = self._decide(version)
            if release is not None:
                self.releases.append(release)
        self.releases.sort(key=lambda r: r.parsed_version)
        self.metadata = prefixed({name: view.metadata for name, view in views.items()})

    # --- the decision ---------------------------------------------------------------------
    def _decide(self, version: str) -> Release | None:
        entries = {
            name: next((r for r in view.releases if r.version == version), None)
            for name, view in self.views.items()
        }
        targets = {e.target for e in entries.values() if e is not None}
        if len(targets) > 1:
            listed = ", ".join(f"{n}: {e.target}" for n, e in entries.items() if e is not None)
            problem = UpdateError(
                ErrorCode.REPOSITORIES_DISAGREE,
                f"the repositories list {version} under different targets ({listed})",
            )
            self.agreements[version] = Agreement(version, "", (), (), (), 0, problem)
            return None
        target = targets.pop()
        agreement: Agreement | None = None
        for mapping in self.map.mappings_for(target):
            agreement = self._agreement(version, target, mapping, entries)
            if agreement.agreed:
                break
        if agreement is None:
            problem = UpdateError(
                ErrorCode.APPROVAL_MISSING,
                f"no mapping of the repository map covers {target}: no repository may approve it",
            )
            agreement = Agreement(version, target, (), (), (), 0, problem)
        self.agreements[version] = agreement
        if not agreement.agreed:
            return None
        agreeing = [entries[n] for n in agreement.signed_by]
        return combine([e for e in agreeing if e is not None])

    def _agreement(
        self, version: str, target: str, mapping: Mapping, entries: dict[str, Release | None]
    ) -> Agreement:
        groups: dict[tuple[object, ...], list[str]] = {}
        infos: dict[str, TargetFile] = {}
        missing, unverifiable = [], []
        for name in mapping.repositories:
            entry = entries.get(name)
            if entry is None:
                missing.append(name)
                continue
            try:
                info = self.views[name].verified_target(entry)
            except UpdateError as e:
                unverifiable.append(f"{name} ({e.code})")
                continue
            infos[name] = info
            key = (info.length, tuple(sorted(info.hashes.items())))
            groups.setdefault(key, []).append(name)
        best = max(groups.values(), key=len, default=[])
        dissenting = [n for group in groups.values() if group is not best for n in group]
        dissenting += unverifiable
        needs = f"{mapping.threshold} of {', '.join(mapping.repositories)}"
        problem = None
        if len(best) < mapping.threshold:
            if len(groups) > 1 or unverifiable:
                sides = "; ".join(
                    f"{', '.join(group)}: {_bytes(infos[group[0]])}" for group in groups.values()
                )
                detail = f"; not verifiable in {', '.join(unverifiable)}" if unverifiable else ""
                problem = UpdateError(
                    ErrorCode.REPOSITORIES_DISAGREE,
                    f"{version} ({target}) needs the same bytes signed by {needs}, "
                    f"and they disagree ({sides}{detail})",
                )
            else:
                signers = ", ".join(best) or "none of them"
                problem = UpdateError(
                    ErrorCode.APPROVAL_MISSING,
                    f"{version} ({target}) needs {needs} to sign it; signed by {signers}, "
                    f"missing from {', '.join(missing)}",
                )
        else:
            self._targets[version] = (infos[best[0]], tuple(best))
            self._tars[version] = {name: (infos[name].custom or {}).get("tar") for name in best}
        return Agreement(
            version,
            target,
            tuple(best),
            tuple(missing),
            tuple(dissenting),
            mapping.threshold,
            problem,
        )

    # --- what the service asks --------------------------------------------------------------
    def delta_target(self, base_version: str, version: str) -> ListedDelta | None:
        """The signed delta from ``base_version`` to ``version``, from the first agreeing
        repository that lists one; None when none does.

        A delta is trusted for nothing but the tar it makes, and that tar is checked
        against the one the release target signs. So with a map, every repository that
        agrees on the release must sign the same tar (``tuf-repo approve`` signs it once
        the bytes unpack to it); otherwise the release is downloaded whole.

        Raises:
            UpdateError: approval_missing when an agreeing repository signs no tar or
                another one; a TUF code when metadata that would list the delta fails.
        """
        signers = self.signers(version)
        for name in signers:
            delta = self.views[name].delta_target(base_version, version)
            if delta is not None:
                break
        else:
            return None
        tars = self._tars[version]
        first = tars[signers[0]]
        unlike = [n for n in signers if tars[n] is None or tars[n] != first]
        if unlike:
            raise UpdateError(
                ErrorCode.APPROVAL_MISSING,
                f"{', '.join(unlike)} {'signs' if len(unlike) == 1 else 'sign'} no tar of "
                f"{version}, or another one than {signers[0]}: a delta needs the tar every "
                "approving repository signs",
            )
        return delta  # fetched from the repository that lists it

    def refusal(self, version: str) -> UpdateError | None:
        """Why ``version`` is not offered, when a repository lists it but consensus is missing."""
        wanted = Version(version)
        for listed, agreement in self.agreements.items():
            if Version(listed) == wanted:
                return agreement.problem
        return None

    def approvals(self) -> list[Agreement]:
        """Every version a repository lists, with who signs it: offered or not."""
        return [self.agreements[v] for v in sorted(self.agreements, key=Version)]

    def signers(self, version: str) -> tuple[str, ...]:
        """The repositories that agree on ``version``'s bytes (empty: not offered)."""
        agreement = self.agreements.get(version)
        return agreement.signed_by if agreement is not None and agreement.agreed else ()

    def verified_target(self, release: Release) -> TargetFile:
        """The agreed ``TargetFile`` (each agreeing repository has cross-checked its own entry).

        Raises:
            UpdateError: approval_missing or repositories_disagree when not agreed.
        """
        if (problem := self.refusal(release.version)) is not None:
            raise problem
        if release.version not in self._targets:
            raise UpdateError(ErrorCode.TARGET_NOT_FOUND, f"{release.version} is not offered")
        return self._targets[release.version][0]

    def locations(self, info: TargetFile, version: str) -> list[tuple[str, Transport | None]]:
        """Where the agreed bytes may be fetched: each agreeing repository, in map order.

        Each through that repository's own transport (its credentials go to it only).
        The bytes are checked against the agreed length and hashes wherever they come from.
        """
        signers = self._targets[version][1]
        return [loc for name in signers for loc in self.views[name].locations(info, version)]


class ConsensusRepository:
    """Makes consensus views from every repository of the map."""

    def __init__(self, repository_map: RepositoryMap, sources: dict[str, Source]) -> None:
        self.map = repository_map
        self.sources = sources

    def refresh(self) -> ConsensusView:
        """Refresh every repository; the first that fails fails the check, named.

        Raises:
            UpdateError: the failing repository's code, its name in the message.
        """
        views = {name: source.refresh() for name, source in self.sources.items()}
        return ConsensusView(views, self.map)

    def trusted_metadata(self) -> TrustedMetadataInfo:
        """What each repository's cache trusts now, as ``name/role`` (no network)."""
        return prefixed({name: source.trusted_metadata() for name, source in self.sources.items()})


def prefixed(each: dict[str, TrustedMetadataInfo]) -> TrustedMetadataInfo:
    """Every repository's roles in one table, as ``name/role``."""
    return TrustedMetadataInfo(
        {f"{n}/{role}": v for n, info in each.items() for role, v in info.versions.items()},
        {f"{n}/{role}": e for n, info in each.items() for role, e in info.expires.items()},
    )


def _bytes(info: TargetFile) -> str:
    sha = info.hashes.get("sha256", next(iter(info.hashes.values()), ""))
    return f"{info.length} bytes, sha256 {sha[:12]}"


def combine(entries: list[Release]) -> Release:
    """One release from the agreeing repositories' entries (see the module's rules)."""
    first = entries[0]
    channels = tuple(c for c in first.channels if all(c in e.channels for e in entries))
    withdrawn = next((e.withdrawn for e in entries if e.withdrawn is not None), None)
    released = max((e.released_at for e in entries), default="")
    return replace(
        first,
        channels=channels,
        withdrawn=withdrawn,
        released_at=released,
        rollout=slowest([e.rollout for e in entries]),
    )


def slowest(plans: list[Rollout | None]) -> Rollout | None:
    """A plan that reaches, at every moment, the lowest percentage any of ``plans`` reaches.

    ``None`` (every host at once) never holds a release back. A paused plan holds
    its percentage; the result is paused from the earliest pause (holding back
    no less than the true lowest: it may only be slower, never faster).
    """
    real = [p for p in plans if p is not None]
    if not real:
        return None
    if len(real) == 1:
        return real[0]
    start = min(p.start for p in real)
    moments = sorted({p.start + timedelta(seconds=s.after_seconds) for p in real for s in p.steps})
    steps: list[Step] = []
    for moment in moments:
        percent = min(p.percent_at(moment) for p in real)
        if percent > (steps[-1].percent if steps else 0):
            steps.append(Step(int((moment - start).total_seconds()), percent))
    pauses = [p.paused_at for p in real if p.paused_at is not None]
    paused_at: datetime | None = min(pauses) if pauses else None
    if not steps:  # some plan never gets past 0 %: a plan paused before it starts
        return Rollout(start=start, steps=(Step(0, 1),), paused_at=start - timedelta(seconds=1))
    return Rollout(start=start, steps=tuple(steps[-MAX_STEPS:]), paused_at=paused_at)
