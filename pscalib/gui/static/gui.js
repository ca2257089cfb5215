// pscalib web GUI: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // live filtering of the detector list while typing in the search box
  var box = document.getElementById("search");
  var table = document.querySelector("table.detectors");
  if (box && table) {
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        tr.classList.toggle("hidden", q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0);
      });
    });
  }
  // forms that change something important ask first
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
  // the compare form: two different versions
  document.querySelectorAll("form.compare").forEach(function (f) {
    var sel = f.querySelectorAll("select");
    if (sel.length === 2 && sel[1].options.length > 1) { sel[1].selectedIndex = 1; }
  });
});
