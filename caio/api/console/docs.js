// Starts Swagger UI on /openapi.json; kept out of the page so the CSP can forbid inline script.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The API takes bearer tokens; "Authorize" keeps one in memory for "Try it out".
    persistAuthorization: false,
  });
});
