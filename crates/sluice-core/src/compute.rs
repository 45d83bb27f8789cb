//! Where and in what precision the embedding model runs, as a pipeline file chooses it.

use std::fmt;

/// The device the embedding model runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DevicePreference {
    /// A CUDA GPU when the binary was built with CUDA and one is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// A CUDA GPU, or an error at start when there is none.
    Cuda,
}

/// The number format of the model's weights and activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 on CPU, f16 on GPU.
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl DevicePreference {
    pub const NAMES: &[&str] = &["auto", "cpu", "cuda"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "cuda" => Self::Cuda,
            _ => return None,
        })
    }
}

impl Precision {
    pub const NAMES: &[&str] = &["auto", "f32", "f16", "bf16"];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "auto" => Self::Auto,
            "f32" => Self::F32,
            "f16" => Self::F16,
            "bf16" => Self::Bf16,
            _ => return None,
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}
