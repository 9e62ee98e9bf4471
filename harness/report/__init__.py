"""`harness report RUN [RUN ...] --html FILE`: records as one self-contained HTML page (``page.build_report``).

Everything is inline (styles, the sorting script, PNG charts as base64 data URIs), so the file opens offline and
can be mailed or archived as a CI artifact. ``sections`` holds what the page shows; ``figures`` the charts.
"""
