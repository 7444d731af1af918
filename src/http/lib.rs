//! The HTTP JSON API (actix-web): application start-up, shared state and routing. The only
//! module that imports actix.

pub mod access_report;
pub mod auth;
pub mod error;
mod methods;
pub mod openapi;
pub mod pages;
pub mod preference_html;
pub mod query;
pub mod routes;
pub mod spool;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

use service::access::KeyStore;
use service::Service;

/// What every handler can reach. Each HTTP worker holds a copy of its own (the same service,
/// keys and count of bulk streams behind it), so the reference every request takes to it is
/// counted on a line of its worker's core, not one both cores write.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub keys: Arc<KeyStore>,
    /// Base URL of this service as people and mail clients reach it (no trailing slash).
    pub public_url: String,
    /// Days a preference link works unless its request says otherwise.
    pub preference_link_days: u32,
    /// Where `POST /v1/backups` writes backups (default `<data dir>/backups`).
    pub backup_dir: Option<std::path::PathBuf>,
    /// How many backups to keep there (the oldest beyond are removed).
    pub backup_keep: usize,
    /// NDJSON bulk checks being answered now (at most [`routes::bulk::MAX_STREAMS`]).
    pub bulk_streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub bulk_limits: BulkLimits,
}

/// How bulk answers wait for a slow client.
#[derive(Debug, Clone, Copy)]
pub struct BulkLimits {
    /// Bytes of answers held in memory per list.
    pub in_memory: usize,
    /// Bytes of answers held in the temporary file per list.
    pub file_limit: u64,
    /// How long answers wait for a client that reads none once both are full.
    pub reader_timeout: std::time::Duration,
}

impl Default for BulkLimits {
    fn default() -> Self {
        Self {
            in_memory: spool::IN_MEMORY,
            file_limit: spool::FILE_LIMIT,
            reader_timeout: routes::bulk::READER_TIMEOUT,
        }
    }
}

/// How the HTTP server runs.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Base URL for links (default `http://<bound address>`).
    pub public_url: Option<String>,
    /// Days a preference link works by default (default 14).
    pub preference_link_days: Option<u32>,
    /// Where backups go (default `<data dir>/backups`).
    pub backup_dir: Option<std::path::PathBuf>,
    /// Backups kept (default [`DEFAULT_BACKUP_KEEP`]).
    pub backup_keep: Option<usize>,
    /// How bulk answers wait for slow clients (default [`BulkLimits::default`]).
    pub bulk_limits: Option<BulkLimits>,
    /// Whether this server pushes downstream systems' webhooks (default yes; on a database
    /// ledger one node should, `serve --deliver-webhooks`).
    pub deliver_webhooks: Option<bool>,
}

/// Backups kept by default.
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// A bound, running server.
pub struct Application {
    port: u16,
    server: Server,
    /// The service whose webhooks this server delivers, when it does.
    webhooks: Option<Arc<Service>>,
}

async fn openapi_doc() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(openapi::openapi_json())
}

/// No route took the request: 405 with `Allow` when the path is a route and only the method
/// is wrong, else 404.
async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    match methods::allowed(req.path()) {
        Some(allow) => {
            let mut resp = error::ApiError::new(error::Kind::MethodNotAllowed, format!("this route takes {allow}"))
                .error_response();
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
                resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
            }
            resp
        }
        None => error::ApiError::new(error::Kind::NotFound, "no such route").error_response(),
    }
}

impl Application {
    /// Binds `listener` and builds the server; it runs once awaited.
    pub fn build(
        listener: TcpListener,
        service: Arc<Service>,
        keys: Arc<KeyStore>,
        options: HttpOptions,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let port = addr.port();
        let public_url =
            options.public_url.unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
        let preference_link_days = options.preference_link_days.unwrap_or(service::DEFAULT_LINK_DAYS);
        let backup_dir = options.backup_dir;
        let backup_keep = options.backup_keep.unwrap_or(DEFAULT_BACKUP_KEEP).max(1);
        let webhooks = options.deliver_webhooks.unwrap_or(true).then(|| service.clone());
        let state = AppState {
            service,
            keys,
            public_url,
            preference_link_days,
            backup_dir,
            backup_keep,
            bulk_streams: Default::default(),
            bulk_limits: options.bulk_limits.unwrap_or_default(),
        };
        let mut server = HttpServer::new(move || {
            use routes::*;
            let state = web::Data::new(state.clone());
            let json = |limit| web::JsonConfig::default().limit(limit).error_handler(error::json_error);
            App::new()
                .wrap(actix_web::middleware::ErrorHandlers::new().default_handler(error::actix_errors_as_problems))
                // One layer around every request. HEAD is GET without the body (RFC 9110
                // §9.3.2): the connection leaves the body out because the request it read was
                // a HEAD. Then the request is counted for /metrics, outside the error handlers
                // so the status is the one sent (streaming answers count the time to their
                // first byte).
                .wrap_fn(|mut req, srv| {
                    let started = std::time::Instant::now();
                    let method = req.method().clone();
                    if method == actix_web::http::Method::HEAD {
                        req.head_mut().method = actix_web::http::Method::GET;
                    }
                    let answer = actix_web::dev::Service::call(srv, req);
                    async move {
                        let res = answer.await?;
                        let route = res.request().match_name().unwrap_or("unmatched");
                        let took = started.elapsed();
                        metrics::METRICS.http_request(route, method.as_str(), res.status().as_u16(), took);
                        Ok(res)
                    }
                })
                .app_data(state.clone())
                .app_data(json(events::MAX_EVENT_BODY))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                // The router tries resources in this order, most of them by regular
                // expression: the route every send asks comes first.
                .service(checks::get_check)
                .service(health::get_healthz)
                .service(health::get_readyz)
                .service(health::get_metrics)
                .service(backups::create_backup)
                .service(keys::list_keys)
                .service(log::get_checkpoint)
                .service(log::get_inclusion_proof)
                .service(log::get_consistency_proof)
                .service(web::resource("/openapi.json").name("openapi").route(web::get().to(openapi_doc)))
                .service(purposes::put_purpose)
                .service(purposes::list_purposes)
                .service(
                    web::resource("/v1/notices/{notice}")
                        .name("notice")
                        .app_data(json(notices::MAX_NOTICE_BODY))
                        .route(web::put().to(notices::put_notice))
                        .route(web::get().to(notices::get_notice))
                        .default_service(web::to(no_route)),
                )
                .service(notices::list_notices)
                .service(downstream::list_downstream)
                .service(downstream::get_downstream_feed)
                .service(downstream::get_downstream_feed_stream)
                .service(
                    web::resource("/v1/downstream/acknowledgements")
                        .name("create_downstream_acknowledgement")
                        .app_data(json(downstream::MAX_LIST_BODY))
                        .route(web::post().to(downstream::create_downstream_acknowledgement))
                        .default_service(web::to(no_route)),
                )
                .service(downstream::get_downstream_overdue)
                .service(
                    web::resource("/v1/downstream/lookup")
                        .name("create_downstream_lookup")
                        .app_data(json(downstream::MAX_LIST_BODY))
                        .route(web::post().to(downstream::create_downstream_lookup))
                        .default_service(web::to(no_route)),
                )
                .service(downstream::get_downstream_webhook_secret)
                .service(
                    web::resource("/v1/downstream/{system}")
                        .name("put_downstream")
                        .route(web::put().to(downstream::put_downstream))
                        .default_service(web::to(no_route)),
                )
                .service(
                    web::resource("/v1/events/batch")
                        .name("create_events_batch")
                        .app_data(json(events::MAX_BATCH_BODY))
                        .route(web::post().to(events::create_events_batch))
                        .default_service(web::to(no_route)),
                )
                .service(events::create_event)
                .service(events::get_event)
                .service(events::get_event_receipt)
                .service(export::get_export)
                .service(feed::get_feed)
                .service(feed::get_feed_stream)
                .service(unsubscribe::get_unsubscribe)
                .service(unsubscribe::post_unsubscribe)
                .service(inbound::create_inbound_sms)
                .service(
                    web::resource("/v1/checks")
                        .name("create_checks")
                        .app_data(json(checks::MAX_CHECKS_BODY))
                        .route(web::post().to(checks::create_checks))
                        .default_service(web::to(no_route)),
                )
                .service(imports::create_import)
                .service(imports::get_import)
                .service(
                    web::resource("/v1/suppressions")
                        .name("create_suppressions")
                        .app_data(json(imports::MAX_SUPPRESSION_BODY))
                        .route(web::post().to(imports::create_suppressions))
                        .default_service(web::to(no_route)),
                )
                .service(retention::get_retention_due)
                .service(subjects::get_subject_permissions)
                .service(subjects::get_subject_history)
                .service(subjects::create_preference_link)
                .service(subjects::get_subject_access_report)
                .service(preference_page::get_page)
                .service(preference_page::post_page)
                .service(preference_page::get_receipt)
                .service(preference_page::get_receipt_json)
                .service(preference_page::get_notice)
                .default_service(web::to(no_route))
        })
        .listen(listener)?;
        if let Some(w) = options.workers {
            server = server.workers(w);
        }
        Ok(Self { port, server: server.run(), webhooks })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server from anywhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let deliverer = self.webhooks.map(|s| tokio::spawn(s.deliver_webhooks()));
        let result = self.server.await;
        if let Some(d) = deliverer {
            d.abort();
        }
        result
    }
}
