//! The names of the host, agent and sidecar series the MetricsActor stores
//! (OpenTelemetry semantic conventions), in one place for everything that
//! writes or reads them: the samples (`points`), the native push
//! (`push::native`) and the owner's host series (`report::lists`).
//!
//! `/metrics` (`src/http/prom.rs`) is not among them on purpose: it renders
//! the typed sample in memory, not these stored series, under Prometheus's
//! own names, units and labels (`host_memory_bytes{state="used"}`, COMPAT.md
//! section 5), so a name changed here cannot leave one of its families empty.

/// `container.cpu.limit`.
pub const CONTAINER_CPU_LIMIT: &str = "container.cpu.limit";
/// `container.cpu.utilization`.
pub const CONTAINER_CPU_UTILIZATION: &str = "container.cpu.utilization";
/// `container.memory.limit`.
pub const CONTAINER_MEMORY_LIMIT: &str = "container.memory.limit";
/// `container.memory.usage`.
pub const CONTAINER_MEMORY_USAGE: &str = "container.memory.usage";
/// `container.memory.utilization`.
pub const CONTAINER_MEMORY_UTILIZATION: &str = "container.memory.utilization";
/// `process.cpu.utilization`.
pub const PROCESS_CPU_UTILIZATION: &str = "process.cpu.utilization";
/// `process.memory.usage`.
pub const PROCESS_MEMORY_USAGE: &str = "process.memory.usage";
/// `process.open_file_descriptor.count`.
pub const PROCESS_OPEN_FDS: &str = "process.open_file_descriptor.count";
/// `process.restarts`.
pub const PROCESS_RESTARTS: &str = "process.restarts";
/// `process.threads`.
pub const PROCESS_THREADS: &str = "process.threads";
/// `process.uptime`.
pub const PROCESS_UPTIME: &str = "process.uptime";
/// `system.cpu.load_average.15m`.
pub const SYSTEM_CPU_LOAD_AVERAGE_15M: &str = "system.cpu.load_average.15m";
/// `system.cpu.load_average.1m`.
pub const SYSTEM_CPU_LOAD_AVERAGE_1M: &str = "system.cpu.load_average.1m";
/// `system.cpu.load_average.5m`.
pub const SYSTEM_CPU_LOAD_AVERAGE_5M: &str = "system.cpu.load_average.5m";
/// `system.cpu.utilization`.
pub const SYSTEM_CPU_UTILIZATION: &str = "system.cpu.utilization";
/// `system.disk.io`.
pub const SYSTEM_DISK_IO: &str = "system.disk.io";
/// `system.disk.operations`.
pub const SYSTEM_DISK_OPERATIONS: &str = "system.disk.operations";
/// `system.filesystem.inodes.usage`.
pub const SYSTEM_FILESYSTEM_INODES_USAGE: &str = "system.filesystem.inodes.usage";
/// `system.filesystem.usage`.
pub const SYSTEM_FILESYSTEM_USAGE: &str = "system.filesystem.usage";
/// `system.filesystem.utilization`.
pub const SYSTEM_FILESYSTEM_UTILIZATION: &str = "system.filesystem.utilization";
/// `system.memory.limit`.
pub const SYSTEM_MEMORY_LIMIT: &str = "system.memory.limit";
/// `system.memory.usage`.
pub const SYSTEM_MEMORY_USAGE: &str = "system.memory.usage";
/// `system.memory.utilization`.
pub const SYSTEM_MEMORY_UTILIZATION: &str = "system.memory.utilization";
/// `system.network.connections`.
pub const SYSTEM_NETWORK_CONNECTIONS: &str = "system.network.connections";
/// `system.network.errors`.
pub const SYSTEM_NETWORK_ERRORS: &str = "system.network.errors";
/// `system.network.io`.
pub const SYSTEM_NETWORK_IO: &str = "system.network.io";
/// `system.network.packets`.
pub const SYSTEM_NETWORK_PACKETS: &str = "system.network.packets";
/// `system.paging.usage`.
pub const SYSTEM_PAGING_USAGE: &str = "system.paging.usage";
/// `system.processes.count`.
pub const SYSTEM_PROCESSES_COUNT: &str = "system.processes.count";
