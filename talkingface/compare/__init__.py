"""Compare pipeline variants end to end: quality metrics without downloaded weights, speed,
and a report (``talkingface compare``)."""
