// Entry point: window.HandoffWidget.init(config), or automatic from the script tag's data-* attributes.

import { configFromScript, resolveConfig, scriptOrigin } from "./config.js";
import { HandoffWidget } from "./widget.js";

const script = document.currentScript;
let instance = null;

function init(options = {}) {
  if (instance) return instance;
  const config = resolveConfig({ ...configFromScript(script), ...options }, scriptOrigin(script));
  instance = new HandoffWidget(config);
  const start = () => instance.start();
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
  return instance;
}

window.HandoffWidget = {
  init,
  get instance() {
    return instance;
  },
  version: "0.1.0",
};

// <script src=".../widget.js" data-server-url="..."> starts by itself; so does a page that set
// window.HandoffWidgetConfig before loading the script. Otherwise call HandoffWidget.init({...}).
if (window.HandoffWidgetConfig) init(window.HandoffWidgetConfig);
else if (script && script.dataset && script.dataset.serverUrl !== undefined) init();
