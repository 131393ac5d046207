// The console's own script: draws each chart from the JSON beside it (Apache ECharts,
// served by the gateway), again after htmx swaps new content in. No inline script: the
// console's Content-Security-Policy allows scripts from the gateway only.
(function () {
  "use strict";

  var palette = ["#1f5fa8", "#d9822b", "#2e8540", "#b3261e", "#6a4c93", "#00838f", "#8d6e63"];

  function formatter(unit) {
    return function (value) {
      if (unit === "percent") { return value + "%"; }
      if (unit === "yuan") {
        return Number(value).toLocaleString(undefined, {minimumFractionDigits: 2, maximumFractionDigits: 2});
      }
      return String(value);
    };
  }

  function options(data) {
    var stacked = data.kind === "stacked";
    var type = data.kind === "line" ? "line" : "bar";
    var format = formatter(data.unit);
    var series = data.series.map(function (one) {
      var s = {name: one.name, type: type, data: one.data.map(Number), emphasis: {focus: "series"}};
      if (stacked) { s.stack = "total"; }
      return s;
    });
    if (data.lines && data.lines.length && series.length) {
      series[0].markLine = {
        symbol: "none",
        label: {formatter: "{b}: {c}", position: "insideEndTop"},
        data: data.lines.map(function (line) { return {name: line.name, yAxis: Number(line.value)}; })
      };
    }
    return {
      color: palette,
      aria: {enabled: true},
      animation: false,
      tooltip: {trigger: "axis", valueFormatter: format},
      legend: {type: "scroll", top: 0},
      grid: {left: 8, right: 16, top: 36, bottom: 8, containLabel: true},
      xAxis: {type: "category", data: data.x, axisLabel: {interval: 0, hideOverlap: true}},
      yAxis: {type: "value", axisLabel: {formatter: format}},
      series: series
    };
  }

  function draw(root) {
    if (typeof window.echarts === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-chart"));
      if (!source) { return; }
      var chart = window.echarts.getInstanceByDom(element) || window.echarts.init(element, null, {renderer: "svg"});
      chart.setOption(options(JSON.parse(source.textContent)), true);
      element.setAttribute("data-drawn", "true");
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
  window.addEventListener("resize", function () {
    document.querySelectorAll("[data-drawn]").forEach(function (element) {
      var chart = window.echarts && window.echarts.getInstanceByDom(element);
      if (chart) { chart.resize(); }
    });
  });
}());
