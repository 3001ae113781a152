//! Table tests of every valid and invalid spec form.

use super::*;

fn spec(kind: EndpointKind) -> EndpointSpec {
    EndpointSpec {
        kind,
        rate: None,
        channels: None,
        format: None,
        period_frames: None,
        buffer_periods: None,
        idle: None,
    }
}

fn wav(path: &str) -> EndpointKind {
    EndpointKind::Wav { path: path.into() }
}

fn alsa(pcm: &str) -> EndpointKind {
    EndpointKind::Alsa {
        pcm: pcm.to_string(),
    }
}

fn tone(frequency_hz: f64, amplitude_dbfs: f64) -> EndpointKind {
    EndpointKind::Tone {
        frequency_hz,
        amplitude_dbfs,
    }
}

fn wavsrc(path: &str, looping: bool) -> EndpointKind {
    EndpointKind::WavSource {
        path: path.into(),
        looping,
    }
}

/// Every valid form, with what it must parse to.
fn valid_cases() -> Vec<(&'static str, EndpointSpec)> {
    vec![
        ("wav:/tmp/out.wav", spec(wav("/tmp/out.wav"))),
        ("wav:relative/out.wav", spec(wav("relative/out.wav"))),
        (
            "wav:/tmp/out.wav,rate=44100,channels=1,format=s24_3le,period=441",
            EndpointSpec {
                rate: Some(44_100),
                channels: Some(1),
                format: Some(Format::S24_3Le),
                period_frames: Some(441),
                ..spec(wav("/tmp/out.wav"))
            },
        ),
        (
            "wav:/tmp/f.wav,format=float_le",
            EndpointSpec {
                format: Some(Format::F32Le),
                ..spec(wav("/tmp/f.wav"))
            },
        ),
        // Options may come in any order.
        (
            "wav:/tmp/o.wav,period=960,rate=96000",
            EndpointSpec {
                rate: Some(96_000),
                period_frames: Some(960),
                ..spec(wav("/tmp/o.wav"))
            },
        ),
        // A comma in a file name stays in the file name.
        ("wav:/tmp/take 1,2.wav", spec(wav("/tmp/take 1,2.wav"))),
        (
            "wav:/tmp/a,b.wav,rate=8000",
            EndpointSpec {
                rate: Some(8_000),
                ..spec(wav("/tmp/a,b.wav"))
            },
        ),
        // '=' inside the path (not in a trailing comma segment) is fine.
        ("wav:/tmp/rate=5.wav", spec(wav("/tmp/rate=5.wav"))),
        ("null", spec(EndpointKind::Null)),
        (
            "null,rate=8000,channels=1,period=80",
            EndpointSpec {
                rate: Some(8_000),
                channels: Some(1),
                period_frames: Some(80),
                ..spec(EndpointKind::Null)
            },
        ),
        ("alsa:default", spec(alsa("default"))),
        ("alsa:plughw:0,0", spec(alsa("plughw:0,0"))),
        (
            "alsa:plughw:0,0,rate=44100,buffer=8",
            EndpointSpec {
                rate: Some(44_100),
                buffer_periods: Some(8),
                ..spec(alsa("plughw:0,0"))
            },
        ),
        (
            "alsa:default,idle=0",
            EndpointSpec {
                idle: Some(IdleClose::After(0)),
                ..spec(alsa("default"))
            },
        ),
        (
            "alsa:hw:0,idle=never",
            EndpointSpec {
                idle: Some(IdleClose::Never),
                ..spec(alsa("hw:0"))
            },
        ),
        (
            "pipewire",
            spec(EndpointKind::Pipewire {
                target: None,
                per_stream: false,
            }),
        ),
        (
            "pipewire,mode=stream",
            spec(EndpointKind::Pipewire {
                target: None,
                per_stream: true,
            }),
        ),
        ("browser", spec(EndpointKind::Browser)),
        (
            "browser,rate=44100,channels=1",
            EndpointSpec {
                rate: Some(44_100),
                channels: Some(1),
                ..spec(EndpointKind::Browser)
            },
        ),
        (
            "pipewire:alsa_output.pci-0000_00_1f.3.analog-stereo,rate=44100",
            EndpointSpec {
                rate: Some(44_100),
                ..spec(EndpointKind::Pipewire {
                    target: Some("alsa_output.pci-0000_00_1f.3.analog-stereo".into()),
                    per_stream: false,
                })
            },
        ),
        // ALSA's own upper-case arguments stay with the PCM name.
        (
            "alsa:hw:CARD=PCH,DEV=0,channels=6",
            EndpointSpec {
                channels: Some(6),
                ..spec(alsa("hw:CARD=PCH,DEV=0"))
            },
        ),
        (
            "alsa:file:FILE=/tmp/x.raw,FORMAT=raw,format=s16_le",
            EndpointSpec {
                format: Some(Format::S16Le),
                ..spec(alsa("file:FILE=/tmp/x.raw,FORMAT=raw"))
            },
        ),
        (
            "alsa:null,format=S32_LE",
            EndpointSpec {
                format: Some(Format::S32Le),
                ..spec(alsa("null"))
            },
        ),
        ("tone:440", spec(tone(440.0, DEFAULT_TONE_AMPLITUDE_DBFS))),
        ("tone:997.5,amplitude=-6", spec(tone(997.5, -6.0))),
        ("tone:1000,amplitude=0", spec(tone(1000.0, 0.0))),
        (
            "tone:20000,rate=44100,channels=1",
            EndpointSpec {
                rate: Some(44_100),
                channels: Some(1),
                ..spec(tone(20_000.0, DEFAULT_TONE_AMPLITUDE_DBFS))
            },
        ),
        ("wavsrc:/tmp/in.wav", spec(wavsrc("/tmp/in.wav", false))),
        (
            "wavsrc:/tmp/in.wav,loop=1",
            spec(wavsrc("/tmp/in.wav", true)),
        ),
        (
            "wavsrc:/tmp/in.wav,loop=0",
            spec(wavsrc("/tmp/in.wav", false)),
        ),
        (
            "wavsrc:/tmp/in.wav,loop=true,period=256",
            EndpointSpec {
                period_frames: Some(256),
                ..spec(wavsrc("/tmp/in.wav", true))
            },
        ),
        // The limits themselves are valid.
        (
            "null,rate=1000,channels=32,period=16",
            EndpointSpec {
                rate: Some(1_000),
                channels: Some(32),
                period_frames: Some(16),
                ..spec(EndpointKind::Null)
            },
        ),
        (
            "alsa:hw:0,rate=768000,period=65536,buffer=2",
            EndpointSpec {
                rate: Some(768_000),
                period_frames: Some(65_536),
                buffer_periods: Some(2),
                ..spec(alsa("hw:0"))
            },
        ),
    ]
}

#[test]
fn valid_specs_parse_to_what_they_say() {
    for (text, want) in valid_cases() {
        let got: EndpointSpec = text
            .parse()
            .unwrap_or_else(|error| panic!("'{text}' should parse: {error}"));
        assert_eq!(got, want, "'{text}'");
    }
}

#[test]
fn display_round_trips_every_valid_spec() {
    for (text, want) in valid_cases() {
        let shown = want.to_string();
        let again: EndpointSpec = shown
            .parse()
            .unwrap_or_else(|error| panic!("'{shown}' (from '{text}') should parse: {error}"));
        assert_eq!(again, want, "'{text}' shown as '{shown}'");
    }
}

#[test]
fn display_writes_the_canonical_form() {
    let cases = [
        (
            "wav:/tmp/o.wav,period=960,rate=96000",
            "wav:/tmp/o.wav,rate=96000,period=960",
        ),
        ("alsa:null,format=S32_LE", "alsa:null,format=s32_le"),
        ("tone:440,amplitude=-3", "tone:440"),
        ("tone:440,amplitude=-6", "tone:440,amplitude=-6"),
        ("wavsrc:/a.wav,loop=0", "wavsrc:/a.wav"),
        ("wavsrc:/a.wav,loop=yes", "wavsrc:/a.wav,loop=1"),
        ("alsa:plughw:0,0,buffer=8", "alsa:plughw:0,0,buffer=8"),
    ];
    for (text, canonical) in cases {
        let parsed: EndpointSpec = text.parse().expect("valid");
        assert_eq!(parsed.to_string(), canonical, "'{text}'");
    }
}

/// Every invalid form, with a piece of the message that tells the user what to do.
const INVALID_CASES: [(&str, &str); 48] = [
    (
        "",
        "the endpoint is empty: expected wav:PATH, null, alsa:PCM, pipewire[:TARGET], tone:FREQ, wavsrc:PATH or browser",
    ),
    ("   ", "the endpoint is empty"),
    (
        "foo",
        "unknown endpoint kind 'foo': expected wav:PATH, null, alsa:PCM, pipewire[:TARGET], tone:FREQ, wavsrc:PATH or browser",
    ),
    ("foo:bar", "unknown endpoint kind 'foo'"),
    ("WAV:/tmp/x.wav", "unknown endpoint kind 'WAV'"),
    ("wav", "wav: needs an argument, e.g. wav:/tmp/out.wav"),
    ("wav:", "wav: needs an argument"),
    ("wav:,rate=48000", "wav: needs an argument"),
    ("alsa", "alsa: needs an argument, e.g. alsa:default"),
    ("wavsrc:", "wavsrc: needs an argument"),
    ("tone", "tone: needs an argument, e.g. tone:440"),
    ("null:", "null takes no argument"),
    ("null:x", "null takes no argument"),
    (
        "wav:/x.wav,rate=x",
        "bad rate 'x': expected a whole number in 1000..=768000",
    ),
    (
        "wav:/x.wav,rate=999",
        "bad rate '999': expected a whole number in 1000..=768000",
    ),
    ("wav:/x.wav,rate=768001", "bad rate '768001'"),
    ("wav:/x.wav,rate=-1", "bad rate '-1'"),
    ("wav:/x.wav,rate=", "bad rate ''"),
    (
        "null,channels=0",
        "bad channels '0': expected a whole number in 1..=32",
    ),
    ("null,channels=33", "bad channels '33'"),
    (
        "null,period=15",
        "bad period '15': expected a whole number in 16..=65536",
    ),
    (
        "alsa:hw:0,buffer=1",
        "bad buffer '1': expected a whole number in 2..=64",
    ),
    (
        "wav:/x.wav,format=s17",
        "bad format 's17': expected a sample format such as s16_le",
    ),
    (
        "wav:/x.wav,format=s16_be",
        "format s16_be cannot be written to a WAV file: use u8, s16_le",
    ),
    ("alsa:hw:0,format=mpeg", "format mpeg cannot be converted"),
    (
        "wav:/x.wav,chanels=1",
        "unknown option 'chanels': expected rate, channels, format, period, buffer, idle, mode, loop or amplitude",
    ),
    ("null,rate=8000,rate=8000", "option 'rate' given twice"),
    (
        "wav:/x.wav,buffer=4",
        "option 'buffer' applies only to alsa: endpoints",
    ),
    ("pipewire:", "pipewire: needs a node name after the colon"),
    ("browser:mic", "browser takes no argument"),
    (
        "browser,format=s16_le",
        "option 'format' applies only to wav: and alsa: endpoints",
    ),
    (
        "browser,idle=5",
        "option 'idle' applies only to alsa: endpoints",
    ),
    ("pipewire,mode=each", "bad mode 'each': expected mix"),
    (
        "alsa:default,mode=stream",
        "option 'mode' applies only to pipewire endpoints",
    ),
    (
        "pipewire,format=s16_le",
        "option 'format' applies only to wav: and alsa: endpoints",
    ),
    (
        "pipewire,idle=5",
        "option 'idle' applies only to alsa: endpoints",
    ),
    (
        "null,idle=5",
        "option 'idle' applies only to alsa: endpoints",
    ),
    (
        "alsa:default,idle=86401",
        "bad idle '86401': expected a whole number in 0..=86400, or never",
    ),
    ("alsa:default,idle=soon", "bad idle 'soon'"),
    (
        "null,loop=1",
        "option 'loop' applies only to wavsrc: endpoints",
    ),
    (
        "wavsrc:/x.wav,loop=2",
        "bad loop value '2': expected 0 or 1",
    ),
    (
        "wav:/x.wav,amplitude=-6",
        "option 'amplitude' applies only to tone: endpoints",
    ),
    (
        "wavsrc:/x.wav,format=s16_le",
        "option 'format' does not apply to wavsrc: the file's header gives its format",
    ),
    (
        "tone:440,format=s16_le",
        "option 'format' applies only to wav: and alsa: endpoints",
    ),
    (
        "tone:abc",
        "bad tone frequency 'abc': expected Hz above 0, e.g. tone:440",
    ),
    ("tone:0", "bad tone frequency '0'"),
    (
        "tone:24000",
        "tone frequency 24000 Hz must be below half the rate (24000 Hz at rate 48000)",
    ),
    (
        "tone:440,amplitude=3",
        "bad amplitude '3': expected dBFS in -120..=0, e.g. amplitude=-6",
    ),
];

#[test]
fn invalid_specs_are_refused_with_an_actionable_message() {
    for (text, want) in INVALID_CASES {
        let error = text
            .parse::<EndpointSpec>()
            .expect_err(&format!("'{text}' should be refused"));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("invalid endpoint '{text}': ")),
            "'{text}': {message}"
        );
        assert!(
            message.contains(want),
            "'{text}': got '{message}', want '{want}'"
        );
    }
}

#[test]
fn more_refusals() {
    // Non-finite numbers and frequencies above Nyquist at a given rate.
    for text in [
        "tone:inf",
        "tone:NaN",
        "tone:-5",
        "tone:4000,rate=8000",
        "tone:440,amplitude=nan",
    ] {
        assert!(
            text.parse::<EndpointSpec>().is_err(),
            "'{text}' should be refused"
        );
    }
}

#[test]
fn directions() {
    let cases = [
        ("wav:/x.wav", true, false),
        ("null", true, true),
        ("alsa:default", true, true),
        ("pipewire", true, true),
        ("tone:440", false, true),
        ("wavsrc:/x.wav", false, true),
        ("browser", false, true),
    ];
    for (text, playback, capture) in cases {
        let parsed: EndpointSpec = text.parse().expect("valid");
        assert_eq!(parsed.is_playback(), playback, "'{text}'");
        assert_eq!(parsed.is_capture(), capture, "'{text}'");
    }
}

#[test]
fn defaults_are_48k_stereo_10ms_and_4_periods() {
    let null: EndpointSpec = "null".parse().expect("valid");
    assert_eq!(
        null.device_format().expect("no I/O for null"),
        DeviceFormat {
            rate: 48_000,
            channels: 2,
            period_frames: 480
        }
    );
    assert_eq!(null.effective_buffer_periods(), 4);
    let alsa: EndpointSpec = "alsa:default".parse().expect("valid");
    assert_eq!(alsa.idle_close(), Some(Duration::from_secs(5)));
    let alsa: EndpointSpec = "alsa:default,idle=never".parse().expect("valid");
    assert_eq!(alsa.idle_close(), None);
    let alsa: EndpointSpec = "alsa:default,idle=30".parse().expect("valid");
    assert_eq!(alsa.idle_close(), Some(Duration::from_secs(30)));
}

#[test]
fn openers_are_refused_for_the_wrong_direction() {
    let tone: EndpointSpec = "tone:440".parse().expect("valid");
    let message = tone.playback_opener().err().expect("refused").to_string();
    assert!(message.contains("cannot be used for playback"), "{message}");
    assert!(
        message.contains("wav:PATH, null, alsa:PCM or pipewire"),
        "{message}"
    );

    let wav: EndpointSpec = "wav:/x.wav".parse().expect("valid");
    let message = wav.capture_opener().err().expect("refused").to_string();
    assert!(message.contains("cannot be used for capture"), "{message}");
}

#[test]
fn openers_open_working_devices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sink.wav");
    let text = format!(
        "wav:{},rate=8000,channels=1,period=80,format=u8",
        path.display()
    );
    let spec: EndpointSpec = text.parse().expect("valid");
    let mut sink = spec
        .playback_opener()
        .expect("opener")
        .open()
        .expect("opens");
    assert_eq!(sink.format().period_samples(), 80);
    sink.write(&[0.5; 80]).expect("writes");
    sink.finish().expect("finishes");
    let info = crate::wav::WavReader::open(&path).expect("readable").info();
    assert_eq!(
        (info.format, info.rate, info.channels),
        (Format::U8, 8_000, 1)
    );
    assert_eq!(info.data_bytes, Some(80));

    let source_spec: EndpointSpec = format!("wavsrc:{}", path.display()).parse().expect("valid");
    assert_eq!(
        source_spec.device_format().expect("reads the header"),
        DeviceFormat {
            rate: 8_000,
            channels: 1,
            period_frames: 480
        }
    );
    let mut source = source_spec
        .capture_opener()
        .expect("opener")
        .open()
        .expect("opens");
    let mut period = vec![0f32; 480];
    source.read(&mut period).expect("reads");
    assert!((period[0] - 0.5).abs() < 1.0 / 64.0, "{}", period[0]);

    let tone: EndpointSpec = "tone:1000,channels=1,period=16".parse().expect("valid");
    let mut tone = tone
        .capture_opener()
        .expect("opener")
        .open()
        .expect("opens");
    let mut period = vec![0f32; 16];
    tone.read(&mut period).expect("reads");
    assert!(period.iter().any(|s| s.abs() > 0.1));
}

#[test]
fn a_missing_wav_source_is_reported_when_the_opener_is_made() {
    let spec: EndpointSpec = "wavsrc:/nonexistent/paravox/in.wav".parse().expect("valid");
    let message = spec.capture_opener().err().expect("refused").to_string();
    assert!(message.contains("/nonexistent/paravox/in.wav"), "{message}");
    assert!(message.contains("cannot open the WAV file"), "{message}");
}
