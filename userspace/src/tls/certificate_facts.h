// The facts of an X.509 certificate that hooks and the audit log see.
#pragma once

#include "ramjet/hooks/connection.h"
#include "tls/boringssl.h"

namespace ramjet::tls {

ClientCertificate certificate_facts(X509* cert, bool verified);

}  // namespace ramjet::tls
