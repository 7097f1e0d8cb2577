package devtemporal

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	clusterName = "active"
	// internalIP is where the history, matching and worker services listen.
	internalIP = "127.0.0.1"
)

// memoryDBSeq makes in-memory database names unique within the process:
// SQLite shares an in-memory database between connections with the same name.
var memoryDBSeq atomic.Int64

// newTemporalServer prepares the database and builds (without starting) a
// server for o, whose logger drops warnings once stopping is set.
func newTemporalServer(o settings, stopping *atomic.Bool) (temporal.Server, error) {
	internalPorts := map[primitives.ServiceName]int{}
	for _, svc := range []primitives.ServiceName{
		primitives.HistoryService, primitives.MatchingService, primitives.WorkerService,
	} {
		p, err := freePort(internalIP)
		if err != nil {
			return nil, fmt.Errorf("port for %s service: %w", svc, err)
		}
		internalPorts[svc] = p
	}

	sqlConf, err := prepareDatabase(o)
	if err != nil {
		return nil, err
	}
	conf := serverConfig(o, sqlConf, internalPorts)

	logger := serverLogger{log: slogWithMinLevel(o.Logger, o.level), stopping: stopping}
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("create authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("create claim mapper: %w", err)
	}

	// Static membership: the services find each other at fixed addresses
	// instead of joining a gossip ring, which makes startup much faster.
	frontendHost := net.JoinHostPort(dialIP(o.IP), strconv.Itoa(o.Port))
	hosts := map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(frontendHost),
	}
	for svc, p := range internalPorts {
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(internalIP, strconv.Itoa(p)))
	}

	ts, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	return ts, nil
}

// dynamicConfig returns the server settings that differ from the defaults.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// Make newly added search attributes visible at once instead of after
		// the cache refresh interval, and raise the persistence limits that
		// the extra reads would otherwise hit.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		dynamicconfig.FrontendPersistenceMaxQPS.Key():               10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():                45000,
		// A development server needs far less than the production cache size.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key(): 8096,
		// UIs and tests list workflows a lot.
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
	}
}

// serverConfig builds the static server configuration.
func serverConfig(o settings, sqlConf *config.SQL, internalPorts map[primitives.ServiceName]int) *config.Config {
	frontendAddr := net.JoinHostPort(dialIP(o.IP), strconv.Itoa(o.Port))

	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = dialIP(o.IP)
	// Global.Metrics stays nil: no metrics listener, no global registrations.

	const store = "sqlite-default"
	conf.Persistence.DefaultStore = store
	conf.Persistence.VisibilityStore = store
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{store: {SQL: sqlConf}}

	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			// ClusterID is left empty: the server generates one when it
			// first initialises the database.
			clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: frontendAddr},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"

	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): rpcService(o.IP, o.Port),
	}
	for svc, p := range internalPorts {
		conf.Services[string(svc)] = rpcService(internalIP, p)
	}

	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontendAddr
	return &conf
}

func rpcService(ip string, port int) config.Service {
	var s config.Service
	s.RPC.BindOnIP = ip
	s.RPC.GRPCPort = port
	return s
}

// prepareDatabase returns the SQLite configuration for o, creating the schema
// of a new database file and the namespaces that do not exist yet.
func prepareDatabase(o settings) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if o.DBFilename == "" {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = fmt.Sprintf("devtemporal-%d-%d", os.Getpid(), memoryDBSeq.Add(1))
	} else {
		path, err := filepath.Abs(o.DBFilename)
		if err != nil {
			return nil, fmt.Errorf("database path: %w", err)
		}
		conf.ConnectAttributes = map[string]string{"mode": "rwc"}
		conf.DatabaseName = path
		if err := setupSchemaIfNew(conf, path); err != nil {
			return nil, err
		}
	}

	namespaces := make([]*sqliteschema.NamespaceConfig, 0, len(o.namespaces()))
	for _, ns := range o.namespaces() {
		nc, err := sqliteschema.NewNamespaceConfig(clusterName, ns, false, o.SearchAttributes)
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", ns, err)
		}
		nc.Detail.Config.Retention = durationpb.New(namespaceRetention)
		namespaces = append(namespaces, nc)
	}
	// CreateNamespaces leaves existing namespaces untouched.
	if err := sqliteschema.CreateNamespaces(conf, namespaces...); err != nil {
		return nil, fmt.Errorf("create namespaces: %w", err)
	}
	return conf, nil
}

// setupSchemaIfNew creates the schema in the database file at path when the
// file is missing or empty. A file whose setup fails is removed, so that the
// next attempt starts afresh.
func setupSchemaIfNew(conf *config.SQL, path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.Size() > 0:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database file: %w", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	if err := sqliteschema.SetupSchema(conf); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("set up database schema: %w", err)
	}
	return nil
}
