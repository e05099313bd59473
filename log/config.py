"""Per-partition log settings, named after Kafka's topic configs."""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1024 * 1024 * 1024
DAY_MS = 24 * 60 * 60 * 1000


@dataclass
class LogConfig:
    """Kafka's topic-level log settings with Kafka's defaults (segment.bytes, retention.ms, ...)."""

    segment_bytes: int = GiB
    segment_ms: int = 7 * DAY_MS
    retention_ms: int = 7 * DAY_MS  # -1 = keep forever
    retention_bytes: int = -1  # -1 = no size limit
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10 * 1024 * 1024
    flush_interval_messages: int | None = None  # None = leave flushing to the OS
    flush_interval_ms: int | None = None
    fsync_every_append: bool = False
    delete_retention_ms: int = DAY_MS
    min_compaction_lag_ms: int = 0

    @property
    def compact(self) -> bool:
        """Whether cleanup.policy includes compaction."""
        return "compact" in self._policies()

    @property
    def delete(self) -> bool:
        """Whether cleanup.policy includes time/size retention."""
        return "delete" in self._policies()

    def _policies(self) -> set[str]:
        return {p.strip() for p in self.cleanup_policy.split(",") if p.strip()}
