"""A small faust-streaming app for compat/test_faust.py: word counts into a table.

    sentences --split--> words (keyed by word: the repartition) --count--> table word_counts

The table's changelog topic (``<app id>-word_counts-changelog``, compacted) is the only copy
of its state: the store is in memory, so a restarted worker must recover the counts from the
changelog, and the test reads the counts from there. Run as
``python -m compat.faust_app worker``; settings from the environment: KBROKER_BOOTSTRAP,
FAUST_APP_ID, FAUST_DATA_DIR, FAUST_GUARANTEE (at_least_once|exactly_once), and
FAUST_SPLIT=0 to leave the split agent out (words are then produced by the test itself).
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ.get("FAUST_APP_ID", "kbroker-wordcount"),
    broker=f"kafka://{os.environ.get('KBROKER_BOOTSTRAP', '127.0.0.1:9092')}",
    datadir=os.environ.get("FAUST_DATA_DIR", "faust-data"),
    store="memory://",
    processing_guarantee=os.environ.get("FAUST_GUARANTEE", "at_least_once"),
    topic_partitions=2,
    web_enabled=False,
    # Commit often so a stopped worker leaves little to re-process.
    broker_commit_every=1,
    broker_commit_interval=0.5,
)

sentences = app.topic("sentences", key_type=str, value_type=str, partitions=1)
words = app.topic("words", key_type=str, value_type=str, partitions=2)
word_counts = app.Table("word_counts", default=int, partitions=2)


async def split(stream: faust.StreamT) -> None:
    """Each word of a sentence goes to `words`, keyed by the word (the repartition)."""
    async for sentence in stream:
        for word in sentence.split():
            await words.send(key=word, value=word)


if os.environ.get("FAUST_SPLIT", "1") == "1":
    app.agent(sentences)(split)


@app.agent(words)
async def count(stream: faust.StreamT) -> None:
    """Count each word in the table (each change goes to its changelog)."""
    async for word in stream:
        word_counts[word] += 1


if __name__ == "__main__":
    app.main()
