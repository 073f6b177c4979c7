// MathJax 3, served from the site itself (assets/mathjax/, copied from node_modules/mathjax/es5):
// no CDN. This file must load before tex-chtml.js (mkdocs.yml lists it first).
// Math is typeset only inside notebook pages (.jupyter-wrapper) and pymdownx.arithmatex spans on
// Markdown pages, so a dollar sign in the README's prose or in a table is never taken for math.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "md-typeset|tex2jax_ignore",
    processHtmlClass: "arithmatex|jupyter-wrapper|tex2jax_process",
  },
};
