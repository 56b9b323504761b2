// MathJax 3 settings for pymdownx.arithmatex in generic mode, which writes
// inline math as \( \) and display math as \[ \] inside elements of the class
// "arithmatex". MathJax typesets only those elements.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// Material for MkDocs emits document$ for every page it shows, including pages
// loaded by instant navigation without a reload. MathJax typesets the first
// page itself when it starts; later pages need a call.
document$.subscribe(() => {
  if (typeof window.MathJax.typesetPromise === "function") {
    window.MathJax.typesetPromise();
  }
});
