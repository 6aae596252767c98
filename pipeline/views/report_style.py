"""The look of the ``digits report`` page: its stylesheet and its HTML skeleton.

Kept apart from `pipeline.views.report_page` (which fills the skeleton) so the page's
structure reads without 40 lines of CSS in the way.  The page loads no font,
script or image from anywhere: it must open offline and from a mail
attachment.
"""

CSS = """
:root { --ink:#1d2939; --muted:#667085; --line:#e4e7ec; --bg:#f8f9fb; --accent:#1f6feb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; margin-top: 18px; }
h2 { font-size: 16px; margin: 0 0 12px; }
h3 { font-size: 13px; margin: 0 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.cols { display: grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap: 20px; align-items: start; }
.cols3 { display: grid; grid-template-columns: repeat(3, minmax(0,1fr)); gap: 20px; align-items: start; }
img.plot { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; }
table.kv th { text-align: left; font-weight: 500; color: var(--muted); padding: 3px 16px 3px 0; vertical-align: top; white-space: nowrap; }
table.kv td { padding: 3px 0; word-break: break-word; }
table.grid { width: 100%; font-variant-numeric: tabular-nums; }
table.grid.compact { width: auto; min-width: 50%; margin-top: 12px; }
table.grid th, table.grid td { padding: 5px 10px; border-bottom: 1px solid var(--line); }
table.grid th { text-align: right; font-weight: 600; font-size: 12px; color: var(--muted); background: #fafbfc; }
table.grid td { text-align: right; }
table.grid th:first-child, table.grid td:first-child { text-align: left; }
.muted { color: var(--muted); }
.bad { color: #b42318; }
.note { background: #fffaeb; border: 1px solid #fedf89; color: #7a2e0e; padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.status { padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef2f6; }
.status.complete { background: #dcfae6; color: #067647; }
.status.interrupted { background: #fef0c7; color: #93370d; }
.status.failed { background: #fee4e2; color: #b42318; }
.status.running { background: #d1e9ff; color: #175cd3; }
details { margin-top: 10px; }
summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
@media (max-width: 900px) { .cols, .cols3 { grid-template-columns: 1fr; } }
"""

# Filled with str.format: every value is escaped HTML (or the CSS above), never raw record text.
TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>digits run {title}</title>
<style>{css}</style>
</head>
<body>
<main>
<header>
<h1>digits run {title}</h1>
<p>Kaggle Digit Recognizer: k-fold {model} ensemble. Accuracies in %.</p>
</header>
<section id="summary"><h2>Summary</h2><div class="cols">{summary}</div></section>
{sections}
<footer>Written by digits report on {generated} from {source}.</footer>
</main>
</body>
</html>
"""
