//! Alerts of upstream's Go sf-processor 0.7.0, built from source, on the 27 upstream traces it
//! can read (every trace but the 10 legacy pre-v1 ones), one policy worker, alert mode: alert
//! records and matches per rule id, per policy path. Produced with
//! `integration/upstream-compare/` (the Go side's output; this build's agreed record by record);
//! upstream's semantics, not this build's output.

/// `ri-dir`: 1765 alert records.
pub const RUNTIMEINTEGRITY_DIR: (usize, &[(&str, usize)]) = (
    1765,
    &[
        ("Account Discovery: Local Account", 1),
        ("Change thread namespace", 2),
        ("Command and Scripting Interpreter", 4),
        ("Create files below dev", 4),
        ("Downloader detected", 4),
        ("File and Directory Discovery", 14),
        ("Interactive login detected", 107),
        ("Interactive shell", 488),
        ("New pod in namespace robot-shop", 1),
        ("Non sudo setuid", 45),
        ("Permission Groups Discovery: Local Groups", 1),
        ("Privilege escalation", 961),
        ("Shell started by container entry point", 91),
        ("Suspicious process spawned", 224),
        ("System Information Discovery", 80),
        ("System Network Configuration Discovery", 45),
        ("System Network Connections Discovery", 1),
        ("System procs network activity", 2),
        ("Unauthorized installer detected", 14),
        ("Untrusted read sensitive file", 15),
        ("Webserver writing unusual file", 6),
        ("Write Below RPM/DPKG Database", 2),
        ("Write below binary dir", 4),
        ("Write below system dirs", 4),
    ],
);

/// `ri-runtimeintegrity`: 266 alert records.
pub const RUNTIMEINTEGRITY_YAML: (usize, &[(&str, usize)]) = (
    266,
    &[
        ("Change thread namespace", 1),
        ("Downloader detected", 2),
        ("Interactive login detected", 107),
        ("Suspicious process spawned", 126),
        ("Unauthorized installer detected", 20),
        ("Untrusted read sensitive file", 14),
    ],
);

/// `ri-ttps`: 1795 alert records.
pub const TTPS_YAML: (usize, &[(&str, usize)]) = (
    1795,
    &[
        ("Account Discovery: Local Account", 1),
        ("Change thread namespace", 1),
        ("Command and Scripting Interpreter", 4),
        ("Create files below dev", 4),
        ("Downloader detected", 2),
        ("File and Directory Discovery", 14),
        ("Interactive shell", 488),
        ("Non sudo setuid", 45),
        ("Permission Groups Discovery: Local Groups", 1),
        ("Privilege escalation", 995),
        ("Shell started by container entry point", 91),
        ("Suspicious process spawned", 116),
        ("System Information Discovery", 80),
        ("System Network Configuration Discovery", 45),
        ("System Network Connections Discovery", 1),
        ("System procs network activity", 2),
        ("Unauthorized installer detected", 20),
        ("Untrusted read sensitive file", 1),
        ("Webserver writing unusual file", 6),
        ("Write Below RPM/DPKG Database", 2),
        ("Write below binary dir", 4),
        ("Write below system dirs", 4),
    ],
);

/// `dist-filter`: 10845 alert records.
pub const FILTER_YAML: (usize, &[(&str, usize)]) = (
    10845,
    &[
        ("Directory created", 231),
        ("Directory removed", 4),
        ("Execution of a file", 768),
        ("File Modified", 1717),
        ("File Opened with Read Permissions", 501),
        ("File Opened with Write Permissions", 93),
        ("File Read", 1410),
        ("File deleted", 118),
        ("File renamed", 173),
        ("Hard link created", 6),
        ("Network Connection Closed", 2306),
        ("Process Accepted a Network Connection", 476),
        ("Process Created a Network Connection", 1825),
        ("Process Receiving Network Data", 1499),
        ("Process Sending Network Data", 146),
        ("Process Sending and Receiving Network Data", 1486),
        ("Process cloned", 1408),
        ("Process or thread exit", 643),
        ("Soft link created", 42),
        ("UID of process was changed", 63),
    ],
);

/// `tests-dir`: 90130 alert records.
pub const TESTS_DIR: (usize, &[(&str, usize)]) = (
    90130,
    &[
        ("Contains rule", 79776),
        ("Exists rule", 90124),
        ("In rule", 694),
        ("Le rule", 1160),
        ("Logic rule", 694),
        ("Lt rule", 71706),
        ("Network Flows on specific port", 1638),
        ("Pars rule", 694),
        ("Pmatch rule", 754),
        ("Sf map rule", 77192),
        ("Simple rule 1", 768),
        ("Simple rule 2", 768),
        ("Simple rule 3", 768),
        ("Simple rule 4", 696),
        ("Simple rule 5", 696),
        ("Simple rule 6", 696),
        ("Startswith rule", 77342),
        ("iContains rule", 79776),
    ],
);

/// `sigma`: upstream's 51 Sigma rules with its `sigma/config/sysflow.yml`: 1196 alert records.
pub const SIGMA_RULES: (usize, &[(&str, usize)]) = (
    1196,
    &[
        ("30aed7b6-d2c1-4eaf-9382-b6bc43e50c57", 20), // file deletion
        ("42df45e7-e6e9-43b5-8f26-bec5b39cc239", 476), // system info discovery
        ("4c519226-f0cd-4471-bd2f-6fbb2bb68a79", 17), // network connections discovery
        ("676381a6-15ca-4d73-a9c8-6a22e970b90d", 17), // local groups
        ("818f7b24-0fba-4c49-a073-8b755573b9c7", 1111), // webshell detection
        ("b45e3d6f-42c6-47d8-a478-df6bd6cf534c", 7),  // local account
        ("ea34fb97-e2c4-4afb-810f-785e4459b194", 23), // curl usage
    ],
);
