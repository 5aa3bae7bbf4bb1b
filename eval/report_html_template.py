"""The Jinja2 template of ``report.html`` (kept in Python so every install carries it).

Rendered with autoescaping on (:mod:`eval.report_html`); images are data URLs,
styles are inline, there is no script and no external reference.
"""

from __future__ import annotations

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Subgroup evaluation report</title>
<style>
  body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
         color: #1d1d1f; background: #f6f7f9; margin: 0; line-height: 1.45; font-size: 15px; }
  main { max-width: 1160px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
  h1 { font-size: 26px; margin: 0 0 12px; }
  h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px;
       border-bottom: 2px solid #e3e6ea; }
  h3 { font-size: 16px; margin: 20px 0 8px; }
  .banner { padding: 12px 16px; border-radius: 6px; font-size: 17px; font-weight: 600;
            margin: 8px 0 18px; }
  .banner.pass { background: #e6f4ea; color: #1e6b34; border: 1px solid #9fd3ae; }
  .banner.fail { background: #fdecea; color: #a4262c; border: 1px solid #f1aeb5; }
  .banner.none { background: #eef1f5; color: #3b4654; border: 1px solid #cfd6df; }
  dl.summary { display: grid; grid-template-columns: 190px 1fr; gap: 4px 16px; margin: 0; }
  dl.summary dt { color: #5a6473; }
  dl.summary dd { margin: 0; overflow-wrap: anywhere; }
  code { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px;
         background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
  nav { margin: 18px 0 0; font-size: 14px; }
  nav a { margin-right: 14px; color: #0b5cad; text-decoration: none; }
  table { border-collapse: collapse; margin: 6px 0 14px; font-size: 14px; }
  th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ea; text-align: left;
           vertical-align: top; }
  th { background: #f1f3f5; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .ci { display: block; color: #5a6473; font-size: 12px; }
  tr.small td { color: #8a8f98; }
  .badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px;
           font-weight: 600; }
  .badge.pass { background: #e6f4ea; color: #1e6b34; }
  .badge.fail { background: #fdecea; color: #a4262c; }
  .badge.small { background: #eceef1; color: #5a6473; font-weight: 500; }
  .muted { color: #5a6473; font-size: 13px; }
  img.plot { max-width: 100%; height: auto; display: block; margin: 8px 0 12px;
             border: 1px solid #e3e6ea; }
  ul.notes li { margin-bottom: 3px; }
  footer { margin-top: 40px; color: #5a6473; font-size: 12px; }
</style>
</head>
<body>
<main>
<h1>Subgroup evaluation report</h1>
{% if header.gates_total == 0 %}
<div class="banner none">No release gates were given: this report shows metrics only.</div>
{% elif header.passed %}
<div class="banner pass">PASSED: all {{ header.gates_total }} release gates passed.</div>
{% else %}
<div class="banner fail">FAILED: {{ header.gates_failed }} of {{ header.gates_total }}
release gates failed (see Gates).</div>
{% endif %}

<dl class="summary">
  <dt>Model</dt>
  <dd>{% if header.model %}{% if header.model.href %}<a href="{{ header.model.href }}">{% endif %}
    <code>{{ header.model.path }}</code>{% if header.model.href %}</a>{% endif %}
    {% for item in header.model.described %}<br><span class="muted">{{ item }}</span>{% endfor %}
    {% else %}<span class="muted">no model manifest was given</span>{% endif %}</dd>
  <dt>Predictions</dt>
  <dd><code>{{ header.predictions or "n/a" }}</code>
    {% if header.sha256 %}<span class="muted">(sha256 {{ header.sha256 }}…)</span>{% endif %}</dd>
  <dt>Examples</dt>
  <dd>{{ header.n }}{% if header.counts %} <span class="muted">(read {{ header.counts.read }}
    = used {{ header.counts.used }} + rejected {{ header.counts.rejected }})</span>{% endif %}</dd>
  <dt>Positive label</dt><dd>{{ header.positive_label if header.positive_label is not none
    else "n/a (no binary metrics)" }}</dd>
  <dt>Metrics</dt><dd>{{ header.metrics | join(", ") }}</dd>
  <dt>Intervals</dt>
  <dd>{% if header.bootstrap %}{{ (header.confidence * 100) | round(1) }}% bootstrap percentile
    intervals, {{ header.bootstrap }} resamples, seed {{ header.seed }}
    {% else %}none (point estimates only){% endif %}</dd>
  <dt>Small groups</dt>
  <dd>{% if header.min_group_size is not none %}fewer than {{ header.min_group_size }} examples:
    shown, but left out of gaps and gates{% else %}n/a{% endif %}</dd>
  <dt>Evaluated at</dt><dd>{{ header.evaluated_at or "n/a" }}</dd>
  <dt>Software</dt><dd>clinical-llm {{ header.package_version or "n/a" }}
    {% if header.git_commit %}(commit <code>{{ header.git_commit }}</code>){% endif %}</dd>
</dl>

<nav>
  <a href="#gates">Gates</a><a href="#overall">Overall</a><a href="#gaps">Gaps</a>
  {% for a in attributes %}<a href="#{{ a.anchor }}">{{ a.name }}</a>{% endfor %}
  {% if notes %}<a href="#notes">Notes</a>{% endif %}<a href="#reading">How to read</a>
</nav>

<h2 id="gates">Gates</h2>
{% if gates %}
<table>
  <tr><th>gate</th><th>attribute</th><th>metric</th><th>rule</th><th>threshold</th>
      <th>observed</th><th>result</th></tr>
  {% for g in gates %}
  <tr>
    <td>{{ g.name }}</td><td>{{ g.attribute }}</td><td>{{ g.metric }}</td><td>{{ g.rule }}</td>
    <td class="num">{{ g.threshold }}</td>
    <td class="num">{{ g.observed }}<span class="ci">{{ g.use }}{% if g.group %},
      group {{ g.group }}{% endif %}</span></td>
    <td>{% if g.passed %}<span class="badge pass">PASS</span>
        {% else %}<span class="badge fail">FAIL</span>{% endif %}
        {% if g.note %}<span class="ci">{{ g.note }}</span>{% endif %}</td>
  </tr>
  {% endfor %}
</table>
{% else %}
<p class="muted">No gates were given.</p>
{% endif %}

<h2 id="overall">Overall</h2>
<table>
  <tr><th>metric</th><th>value</th><th>interval</th><th>better</th><th>what it measures</th></tr>
  {% for row in overall %}
  <tr><td>{{ row.metric }}</td><td class="num">{{ row.value }}</td>
      <td class="num">{{ row.ci }}</td><td>{{ row.better }}</td>
      <td class="muted">{{ row.description }}{% if row.note %} ({{ row.note }}){% endif %}</td></tr>
  {% endfor %}
</table>

<h2 id="gaps">Gaps between groups</h2>
<p class="muted">The difference between the best and the worst group (max − min) of each
attribute, over groups that are not small, with its interval. Dotted lines are the
thresholds of <code>max_difference</code> gates on that attribute.</p>
{% if overview %}<img class="plot" alt="Gaps between groups per attribute and metric"
  src="{{ overview }}">{% else %}<p class="muted">No attributes were analysed.</p>{% endif %}

{% for a in attributes %}
<h2 id="{{ a.anchor }}">{{ a.name }}</h2>
<img class="plot" alt="{{ a.name }}: metrics by group" src="{{ a.plot }}">
<h3>Groups</h3>
<table>
  <tr><th>group</th><th>n</th>{% for m in metrics %}<th>{{ m }}</th>{% endfor %}</tr>
  {% for g in a.groups %}
  <tr{% if g.small %} class="small"{% endif %}>
    <td>{{ g.name }}{% if g.small %} <span class="badge small">small</span>{% endif %}</td>
    <td class="num">{{ g.n }}</td>
    {% for c in g.cells %}
    <td class="num"{% if c.note %} title="{{ c.note }}"{% endif %}>{{ c.value }}
      <span class="ci">{{ c.ci }}</span></td>
    {% endfor %}
  </tr>
  {% endfor %}
</table>
{% if a.any_small %}<p class="muted">Small groups are shown for completeness; their intervals
are wide and they are left out of the gaps below and of the gates.</p>{% endif %}
<h3>Gaps</h3>
<table>
  <tr><th>metric</th><th>difference (max − min)</th><th>ratio (min / max)</th>
      <th>worst group</th><th>best group</th><th>groups compared</th></tr>
  {% for d in a.disparities %}
  <tr><td>{{ d.metric }}</td>
      <td class="num">{{ d.difference }}<span class="ci">{{ d.difference_ci }}</span></td>
      <td class="num">{{ d.ratio }}<span class="ci">{{ d.ratio_ci }}</span></td>
      <td>{{ d.worst }}</td><td>{{ d.best }}</td><td class="num">{{ d.compared }}</td></tr>
  {% endfor %}
</table>
{% if a.odds %}
<p><strong>Equalized odds difference</strong> (larger of the true and false positive rate
gaps): {{ a.odds.value }}{% if a.odds.ci %} <span class="muted">({{ a.odds.ci }})</span>
{% endif %}{% if a.odds.note %} <span class="muted">{{ a.odds.note }}</span>{% endif %}</p>
{% endif %}
{% if a.tests %}
<h3>Worst-versus-best gap tests</h3>
<table>
  <tr><th>metric</th><th>test</th><th>groups</th><th>p</th><th>p (Holm)</th>
      <th>significant</th></tr>
  {% for t in a.tests %}
  <tr><td>{{ t.metric }}</td><td>{{ t.test }}</td><td>{{ t.groups }}</td>
      <td class="num">{{ t.p }}</td><td class="num">{{ t.p_holm }}</td>
      <td>{{ t.significant }}</td></tr>
  {% endfor %}
</table>
{% endif %}
{% endfor %}

{% if notes %}
<h2 id="notes">Notes</h2>
<ul class="notes">{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul>
{% endif %}

<h2 id="reading">How to read this report</h2>
<ul class="notes">
  <li>Each value comes with an interval: the range that holds the true value with the stated
    confidence, estimated by resampling the patients (bootstrap). Largely overlapping
    intervals mean the data cannot reliably tell the groups apart (the gap tests, when run,
    are the formal check).</li>
  <li>"better" says which direction is good:{% if lower_better %} for
    {{ lower_better | join(", ") }} lower is better;{% endif %} for every other metric higher
    is better. For gaps between groups, smaller is better.</li>
  <li>Gaps compare only groups that are not small. "n/a" marks a value that cannot be
    computed (for example a rate in a group without positive cases).</li>
  <li>A gate that cannot be evaluated fails: a release check never passes on missing
    evidence.</li>
</ul>

<footer>Rendered at {{ rendered_at }} by clinical-llm. Self-contained page: no scripts,
no external resources.</footer>
</main>
</body>
</html>
"""
