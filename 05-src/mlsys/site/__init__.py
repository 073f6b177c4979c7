"""The course website (`make site`): README, lessons with their committed outputs, data card and
slides, built offline and strictly with mkdocs + mkdocs-jupyter (see mkdocs.yml).

- `stage`: copies the pages into build/site-docs/, following and checking their links;
- `hooks`: mkdocs hooks (navigation; notebook pages without CDN scripts, their links mapped);
- `offline`: finds anything a built page would load from another host;
- `build`: stage, `mkdocs build --strict`, offline check; `python -m mlsys.site` runs it.
"""
