// Starts Swagger UI on the docs page with this application's own
// description. Everything it loads comes from this origin: the validator
// badge, which would call an outside service, is off.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
