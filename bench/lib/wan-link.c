// wan-link: a long link between two network namespaces, for `npm run bench -- --wan RTT,RATE`.
//
//   wan-link NS_A_PATH NS_B_PATH DEV ONE_WAY_DELAY_US RATE_BITS_PER_S QUEUE_BYTES
//
//   wan-link NS_A_PATH NS_B_PATH DEV ONE_WAY_DELAY_US RATE_BITS_PER_S QUEUE_BYTES [packet]
//
// Creates a TUN device named DEV inside each of the two network namespaces (paths such as
// /run/netns/NAME), prints "ready MODE" on stdout, then forwards every IP packet read from one
// device to the other. Each direction is the same link: a bottleneck that sends RATE bits/s out of
// a drop-tail queue of QUEUE_BYTES (a router's buffer: a packet that finds it full is dropped),
// then a propagation delay of ONE_WAY_DELAY_US. So RTT = 2 × the delay, and kernel TCP on both
// ends sees real windows, slow start and losses. Each packet's delivery time is computed when it
// arrives; the packet waits in a byte ring until then. On SIGTERM, SIGINT or the parent's death it
// prints its counters and its own CPU time as one JSON line and exits; the devices vanish with it.
//
// MODE "gso" (the default where the kernel allows it): both devices are opened with IFF_VNET_HDR
// and TCP/UDP segmentation offload (TUNSETOFFLOAD), the way wireguard-go and tailscale open theirs,
// so the kernel hands over TSO super-packets of up to 64 KiB (a virtio_net_hdr in front) and the
// forwarder writes them, header and all, into the other device, where the far stack takes them
// whole. One system call then moves up to ~44 segments instead of one: on this paravirtualised
// 2-core VM, per-packet forwarding took 1.5–3.4 s of CPU per 256 MiB of raw TCP (and capped it at
// 40–47 MiB/s on a 10 Gbit/s link), super-packets 0.5–1.0 s. The link model stays per segment: the bottleneck charges a super-packet its wire
// bytes (payload plus one IP+TCP header per gso_size segment, what MTU-sized packets would carry),
// and the counters count segments as packets and wire bytes as bytes. What changes: a super-packet
// that finds the queue full is dropped whole (all its segments: a burst loss, where a router would
// drop the tail segments only), and its segments arrive together, when its last one would have.
// MODE "packet": one ≤ MTU packet per system call, as before; used where the offloads are
// refused, or when the optional last argument "packet" asks for it.
//
// It asks for real-time scheduling (SCHED_FIFO; else nice -20): on a busy machine a forwarder that
// waits for a core adds its wait to every packet's delay, and the link's RTT would grow with the
// load. It sleeps in ppoll between packets, so it takes only the CPU the traffic needs.
//
// Built at bench time by bench/lib/wan.ts with the machine's gcc (the kernel has no netem, and
// Node cannot issue TUNSETIFF).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/** Largest read from a TUN device: a 64 KiB GSO super-packet and its virtio_net_hdr, with room to spare. */
#define MAX_PACKET 131072
/** Offload flags newer than some distributions' headers (Linux 6.2). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif
/** Packets read from one device before looking at the other and at due deliveries. */
#define READ_BURST 64
/** Longest sleep between checks of the stop flag. */
#define MAX_WAIT_NS 100000000LL
/** Real-time priority: above ordinary processes, below the kernel's own threads. */
#define RT_PRIORITY 10
/** Ring room beyond what the delay line and queue can hold at the link rate (small packets' headers). */
#define RING_SLACK 4194304ULL

struct record {
  uint64_t due_ns; /* when it leaves the far end of the link */
  uint32_t len;    /* packet bytes; SKIP marks the unused end of the ring */
  uint32_t pad;
};
#define SKIP UINT32_MAX
#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

struct direction {
  const char *name;
  int in, out;
  uint8_t *ring;
  size_t cap, head, tail, used; /* used counts record bytes, including a skipped end */
  int64_t link_free_ns;         /* when the bottleneck has sent everything queued so far */
  /* Segments and wire bytes (drop_bytes: of the segments dropped, for any reason); frames counts reads (super-packets). */
  uint64_t packets, bytes, frames, queue_drops, ring_drops, write_drops, drop_bytes, max_backlog;
};

static volatile sig_atomic_t stop;
static double ns_per_byte;
static int64_t delay_ns;
static uint64_t queue_bytes;
/** Bytes of virtio_net_hdr in front of every packet read and written: 0 in "packet" mode. */
static size_t vnet_len;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "wan-link: %s: %s\n", what, strerror(errno));
  exit(1);
}

/** Offload sets to ask for, best first; the kernel refuses flags it does not know with EINVAL. */
static const unsigned OFFLOADS[] = {
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
};

/**
 * A TUN device named `dev` in the namespace at `ns_path`, non-blocking; the caller's namespace is
 * kept. With `gso`, opened with IFF_VNET_HDR and segmentation offload; returns -1 (the device
 * gone again) if the kernel refuses either.
 */
static int open_tun(const char *ns_path, const char *dev, int gso) {
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int ns = open(ns_path, O_RDONLY | O_CLOEXEC);
  if (home < 0 || ns < 0) die(ns_path);
  if (setns(ns, CLONE_NEWNET) != 0) die("setns");
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) die("/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (gso ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    if (!gso) die("TUNSETIFF");
    close(fd);
    fd = -1;
  }
  if (gso && fd >= 0) {
    int size = (int)sizeof(struct virtio_net_hdr);
    int ok = ioctl(fd, TUNSETVNETHDRSZ, &size) == 0;
    size_t i = 0;
    while (ok && i < sizeof OFFLOADS / sizeof OFFLOADS[0] && ioctl(fd, TUNSETOFFLOAD, OFFLOADS[i]) != 0) i++;
    if (!ok || i == sizeof OFFLOADS / sizeof OFFLOADS[0]) {
      close(fd);
      fd = -1;
    }
  }
  if (setns(home, CLONE_NEWNET) != 0) die("setns back");
  close(ns);
  close(home);
  return fd;
}

/**
 * What `len` bytes read from a device (virtio_net_hdr included in "gso" mode) put on the wire as
 * MTU-sized packets: their bytes, and how many packets (*segments). A GSO super-packet of P
 * payload bytes after H bytes of IP and TCP/UDP headers is ceil(P / gso_size) segments, each
 * with its own copy of the H header bytes.
 */
static uint64_t wire_bytes(const uint8_t *frame, size_t len, uint32_t *segments) {
  *segments = 1;
  if (vnet_len == 0) return len;
  if (len < vnet_len) return 0;
  struct virtio_net_hdr h;
  memcpy(&h, frame, sizeof h);
  const uint8_t *ip = frame + vnet_len;
  size_t ip_len = len - vnet_len;
  uint8_t type = h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  if (type == VIRTIO_NET_HDR_GSO_NONE || h.gso_size == 0 || ip_len < 40) return ip_len;
  /* Header bytes: IP (IPv4 IHL, or IPv6's fixed 40 and no extension headers), then TCP's data offset or UDP's 8. */
  size_t l3 = 0;
  uint8_t proto = 0;
  if (ip[0] >> 4 == 4) {
    l3 = (size_t)(ip[0] & 15) * 4;
    proto = ip[9];
  } else if (ip[0] >> 4 == 6) {
    l3 = 40;
    proto = ip[6];
  }
  size_t hdr = 0;
  if (proto == IPPROTO_TCP && l3 + 20 <= ip_len) hdr = l3 + (size_t)(ip[l3 + 12] >> 4) * 4;
  else if (proto == IPPROTO_UDP && l3 + 8 <= ip_len) hdr = l3 + 8;
  else if (h.hdr_len > 0 && h.hdr_len <= ip_len) hdr = h.hdr_len; /* the kernel's own count */
  if (hdr == 0 || hdr >= ip_len) return ip_len;
  size_t payload = ip_len - hdr;
  uint32_t n = (uint32_t)((payload + h.gso_size - 1) / h.gso_size);
  *segments = n;
  return payload + (uint64_t)n * hdr;
}

/** Queue one packet (in "gso" mode: one super-packet, charged its wire bytes), or count why it was dropped. */
static void enqueue(struct direction *d, const uint8_t *packet, uint32_t len, int64_t now) {
  uint32_t segments;
  uint64_t wire = wire_bytes(packet, len, &segments);
  d->frames++;
  d->packets += segments;
  d->bytes += wire;
  int64_t start = d->link_free_ns > now ? d->link_free_ns : now;
  uint64_t backlog = (uint64_t)((double)(start - now) / ns_per_byte);
  if (backlog > d->max_backlog) d->max_backlog = backlog;
  /* Drop-tail: a super-packet that does not fit is dropped whole, all its segments. */
  if (backlog + wire > queue_bytes) {
    d->queue_drops += segments;
    d->drop_bytes += wire;
    return;
  }
  size_t need = ALIGN8(sizeof(struct record) + len);
  size_t at;
  if (d->used == 0) d->head = d->tail = 0;
  /* Records run from head to tail; once tail has wrapped to the start, it is below head. */
  int wrapped = d->used > 0 && d->tail < d->head;
  if (!wrapped && d->cap - d->tail >= need) {
    at = d->tail;
  } else if (!wrapped && need < d->head) {
    /* Wrap: mark the end unused (the reader also skips an end too short for a header). */
    size_t rest = d->cap - d->tail;
    if (rest >= sizeof(struct record)) ((struct record *)(d->ring + d->tail))->len = SKIP;
    d->used += rest;
    at = 0;
  } else if (wrapped && d->head - d->tail > need) {
    at = d->tail;
  } else {
    d->ring_drops += segments;
    d->drop_bytes += wire;
    return;
  }
  d->link_free_ns = start + (int64_t)((double)wire * ns_per_byte);
  struct record *r = (struct record *)(d->ring + at);
  r->due_ns = (uint64_t)(d->link_free_ns + delay_ns);
  r->len = len;
  memcpy(d->ring + at + sizeof *r, packet, len);
  d->tail = at + need;
  d->used += need;
}

/** The oldest record, skipping a wrapped end; NULL when empty. */
static struct record *front(struct direction *d) {
  if (d->used == 0) return NULL;
  size_t rest = d->cap - d->head;
  if (rest < sizeof(struct record) || ((struct record *)(d->ring + d->head))->len == SKIP) {
    d->used -= rest;
    d->head = 0;
    if (d->used == 0) return NULL;
  }
  return (struct record *)(d->ring + d->head);
}

/** Write every packet that is due; returns the next due time, or -1. */
static int64_t deliver(struct direction *d, int64_t now) {
  struct record *r;
  while ((r = front(d)) != NULL) {
    if ((int64_t)r->due_ns > now) return (int64_t)r->due_ns;
    ssize_t n = write(d->out, (uint8_t *)r + sizeof *r, r->len);
    if (n != (ssize_t)r->len) {
      uint32_t segments;
      d->drop_bytes += wire_bytes((uint8_t *)r + sizeof *r, r->len, &segments);
      d->write_drops += segments;
    }
    size_t size = ALIGN8(sizeof *r + r->len);
    d->head += size;
    d->used -= size;
  }
  return -1;
}

static void receive(struct direction *d, uint8_t *buf) {
  for (int i = 0; i < READ_BURST; i++) {
    ssize_t n = read(d->in, buf, MAX_PACKET);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("read");
    }
    if (n > 0) enqueue(d, buf, (uint32_t)n, now_ns());
  }
}

static void report(const struct direction *d, const char *sep) {
  printf("\"%s\":{\"packets\":%llu,\"bytes\":%llu,\"frames\":%llu,\"queueDrops\":%llu,\"ringDrops\":%llu,\"writeDrops\":%llu,\"dropBytes\":%llu,\"maxBacklogBytes\":%llu}%s",
         d->name, (unsigned long long)d->packets, (unsigned long long)d->bytes, (unsigned long long)d->frames, (unsigned long long)d->queue_drops,
         (unsigned long long)d->ring_drops, (unsigned long long)d->write_drops, (unsigned long long)d->drop_bytes, (unsigned long long)d->max_backlog, sep);
}

static unsigned long long number(const char *text, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text) {
    fprintf(stderr, "wan-link: bad %s: %s\n", what, text);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc != 7 && !(argc == 8 && strcmp(argv[7], "packet") == 0)) {
    fprintf(stderr, "usage: wan-link NS_A_PATH NS_B_PATH DEV ONE_WAY_DELAY_US RATE_BITS_PER_S QUEUE_BYTES [packet]\n");
    return 2;
  }
  delay_ns = (int64_t)number(argv[4], "delay") * 1000;
  unsigned long long rate = number(argv[5], "rate");
  queue_bytes = number(argv[6], "queue");
  if (rate < 8000 || strlen(argv[3]) >= IFNAMSIZ) {
    fprintf(stderr, "wan-link: rate below 1 kB/s or device name too long\n");
    return 2;
  }
  ns_per_byte = 8e9 / (double)rate;

  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) return 1; /* the parent is already gone */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct sched_param sp = {.sched_priority = RT_PRIORITY};
  if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0 && setpriority(PRIO_PROCESS, 0, -20) != 0) {
    fprintf(stderr, "wan-link: running at normal priority: %s\n", strerror(errno));
  }

  /* Both devices offload, or neither: a super-packet written to a device without them would be refused. */
  int a = -1, b = -1;
  if (argc == 7) {
    a = open_tun(argv[1], argv[3], 1);
    b = a < 0 ? -1 : open_tun(argv[2], argv[3], 1);
    if (b < 0 && a >= 0) close(a);
  }
  if (b < 0) {
    a = open_tun(argv[1], argv[3], 0);
    b = open_tun(argv[2], argv[3], 0);
  } else {
    vnet_len = sizeof(struct virtio_net_hdr);
  }
  /* The delay line holds rate × delay bytes, the queue at most queue_bytes more. */
  size_t cap = (size_t)(2.0 * ((double)rate / 8 * (double)delay_ns / 1e9 + (double)queue_bytes)) + RING_SLACK;
  struct direction dirs[2] = {
    {.name = "aToB", .in = a, .out = b, .cap = cap},
    {.name = "bToA", .in = b, .out = a, .cap = cap},
  };
  for (int i = 0; i < 2; i++) {
    dirs[i].ring = malloc(cap);
    if (dirs[i].ring == NULL) die("malloc");
  }
  uint8_t *buf = malloc(MAX_PACKET);
  if (buf == NULL) die("malloc");
  printf("ready %s\n", vnet_len > 0 ? "gso" : "packet");
  fflush(stdout);

  struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  while (!stop) {
    int64_t now = now_ns();
    int64_t next = -1;
    for (int i = 0; i < 2; i++) {
      int64_t due = deliver(&dirs[i], now);
      if (due >= 0 && (next < 0 || due < next)) next = due;
    }
    int64_t wait = next < 0 ? MAX_WAIT_NS : next - now;
    if (wait > MAX_WAIT_NS) wait = MAX_WAIT_NS;
    struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
    int ready = ppoll(fds, 2, &ts, NULL);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        fprintf(stderr, "wan-link: device %d closed\n", i);
        stop = 1;
      } else if (fds[i].revents & POLLIN) {
        receive(&dirs[i], buf);
      }
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  printf("{\"mode\":\"%s\",\"cpuSeconds\":%.3f,", vnet_len > 0 ? "gso" : "packet", cpu);
  report(&dirs[0], ",");
  report(&dirs[1], "");
  printf("}\n");
  fflush(stdout);
  return 0;
}
