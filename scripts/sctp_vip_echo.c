// SPDX-License-Identifier: Apache-2.0
// An SCTP echo server for LVS-DR / LVS-TUN real servers of the test network, on usrsctp
// (raw IP, no kernel SCTP). usrsctp's example echo_server binds the wildcard and answers
// an INIT from the interface address; a DR/TUN real server must answer from the VIP, so
// this one binds exactly the addresses it is given (usrsctp_bindx).
//
// Usage: sctp_vip_echo PORT ADDR... (IPv4 and/or IPv6). Runs until killed.
// Build: cc -O2 -o sctp_vip_echo sctp_vip_echo.c -lusrsctp -lpthread
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <usrsctp.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PORT ADDR...\n", argv[0]);
		return 2;
	}
	uint16_t port = (uint16_t)atoi(argv[1]);
	usrsctp_init(0, NULL, NULL);
	// Every usrsctp process in a namespace sees every SCTP packet: never answer for others.
	usrsctp_sysctl_set_sctp_blackhole(2);
	struct socket *so = usrsctp_socket(AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP, NULL, NULL, 0, NULL);
	if (!so) {
		perror("usrsctp_socket");
		return 1;
	}
	// One socket for both families, and the receive info that names each association.
	const int off = 0, on = 1;
	usrsctp_setsockopt(so, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	usrsctp_setsockopt(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof(on));
	int n = argc - 2;
	char *packed = calloc((size_t)n, sizeof(struct sockaddr_in6));
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		struct sockaddr_in v4 = {0};
		struct sockaddr_in6 v6 = {0};
		if (inet_pton(AF_INET, argv[i + 2], &v4.sin_addr) == 1) {
			v4.sin_family = AF_INET;
			v4.sin_port = htons(port);
			memcpy(packed + used, &v4, sizeof(v4));
			used += sizeof(v4);
		} else if (inet_pton(AF_INET6, argv[i + 2], &v6.sin6_addr) == 1) {
			v6.sin6_family = AF_INET6;
			v6.sin6_port = htons(port);
			memcpy(packed + used, &v6, sizeof(v6));
			used += sizeof(v6);
		} else {
			fprintf(stderr, "not an address: %s\n", argv[i + 2]);
			return 2;
		}
	}
	if (usrsctp_bindx(so, (struct sockaddr *)packed, n, SCTP_BINDX_ADD_ADDR) < 0) {
		perror("usrsctp_bindx");
		return 1;
	}
	if (usrsctp_listen(so, 16) < 0) {
		perror("usrsctp_listen");
		return 1;
	}
	printf("listening on port %u\n", port);
	fflush(stdout);
	for (;;) {
		char buf[4096];
		struct sockaddr_in6 from;
		socklen_t fromlen = sizeof(from);
		struct sctp_rcvinfo rcv;
		socklen_t infolen = sizeof(rcv);
		unsigned int infotype = 0;
		int flags = 0;
		ssize_t got = usrsctp_recvv(so, buf, sizeof(buf), (struct sockaddr *)&from, &fromlen, &rcv,
					    &infolen, &infotype, &flags);
		if (got <= 0) {
			usleep(1000);
			continue;
		}
		if ((flags & MSG_NOTIFICATION) || infotype != SCTP_RECVV_RCVINFO)
			continue;
		struct sctp_sndinfo snd = {0};
		snd.snd_sid = rcv.rcv_sid;
		snd.snd_ppid = rcv.rcv_ppid;
		snd.snd_assoc_id = rcv.rcv_assoc_id;
		usrsctp_sendv(so, buf, (size_t)got, NULL, 0, &snd, sizeof(snd), SCTP_SENDV_SNDINFO, 0);
	}
}
