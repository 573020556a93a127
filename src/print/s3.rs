//! `sfprint -i s3`: every object of each named bucket is downloaded (streamed to a private
//! temporary directory, removed afterwards) and read as a trace, in key order, as sysprint
//! does. The client is `object_store`'s S3 implementation; keys come from the flags or the
//! usual `AWS_*` environment variables and are never logged.

use std::path::PathBuf;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

use super::cli::S3Args;
use super::input::Damage;

/// Downloaded traces; the directory is removed when this is dropped.
pub struct Downloads {
    pub files: Vec<PathBuf>,
    /// `s3://bucket/key` of each file, for messages.
    pub names: Vec<String>,
    dir: Option<PathBuf>,
}

impl Drop for Downloads {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn private_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let d = base.join(format!("sfprint-s3-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("temporary directory {}: {e}", d.display())),
        }
    }
    Err("no temporary directory could be created".into())
}

/// The endpoint URL of `args` (none: AWS itself, or `AWS_ENDPOINT` from the environment).
pub fn endpoint_url(args: &S3Args) -> Option<String> {
    let host = args.endpoint.as_deref()?;
    let scheme = if args.secure { "https" } else { "http" };
    let host = host
        .strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))
        .unwrap_or(host);
    Some(match args.port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Downloads every object of `buckets`. A bucket that cannot be listed, or an object that
/// cannot be fetched, is damage (named on stderr); the others are still read.
pub fn download(
    args: &S3Args,
    buckets: &[String],
    damage: &mut Vec<Damage>,
) -> Result<Downloads, String> {
    let dir = private_dir()?;
    let mut out = Downloads {
        files: Vec::new(),
        names: Vec::new(),
        dir: Some(dir.clone()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("S3 client runtime: {e}"))?;
    for (bi, bucket) in buckets.iter().enumerate() {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(!args.secure);
        if let Some(url) = endpoint_url(args) {
            b = b
                .with_endpoint(url)
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(k) = &args.access_key {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &args.secret_key {
            b = b.with_secret_access_key(k);
        }
        let store = match b.build() {
            Ok(s) => s,
            Err(e) => return Err(format!("S3 bucket {bucket}: {e}")),
        };
        let bucket_dir = dir.join(bi.to_string());
        std::fs::create_dir_all(&bucket_dir).map_err(|e| e.to_string())?;
        let result: Result<Vec<(PathBuf, String)>, String> = rt.block_on(async {
            let mut metas = Vec::new();
            let mut list = store.list(None);
            while let Some(m) = list.next().await {
                metas.push(m.map_err(|e| format!("listing: {e}"))?);
            }
            metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
            let mut files = Vec::new();
            for (i, m) in metas.iter().enumerate() {
                let path = bucket_dir.join(format!("{i:06}"));
                let name = format!("s3://{bucket}/{}", m.location);
                match fetch(&store, &m.location, &path).await {
                    Ok(()) => files.push((path, name)),
                    Err(e) => damage.push(Damage {
                        file: name,
                        message: e,
                    }),
                }
            }
            Ok(files)
        });
        match result {
            Ok(f) => {
                for (p, n) in f {
                    out.files.push(p);
                    out.names.push(n);
                }
            }
            Err(e) => damage.push(Damage {
                file: format!("s3://{bucket}"),
                message: e,
            }),
        }
    }
    Ok(out)
}

async fn fetch(
    store: &impl ObjectStore,
    key: &object_store::path::Path,
    to: &std::path::Path,
) -> Result<(), String> {
    use std::io::Write;
    let got = store.get(key).await.map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(to).map_err(|e| e.to_string())?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        f.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_sysprint_flags() {
        let mut a = S3Args {
            endpoint: Some("localhost".into()),
            port: Some(9000),
            ..Default::default()
        };
        assert_eq!(endpoint_url(&a).unwrap(), "http://localhost:9000");
        a.secure = true;
        a.port = None;
        assert_eq!(endpoint_url(&a).unwrap(), "https://localhost");
        a.endpoint = None;
        assert!(endpoint_url(&a).is_none());
    }
}
