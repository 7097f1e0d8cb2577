package activities

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/temporal"

	"github.com/txflow/txflow/txn"
)

// ErrTypeUnknownProfile is the error type of a run whose mapping profile is not among the
// worker's profiles (the built-in ones and TXFLOW_PROFILES_DIR's): a retry cannot fix it.
const ErrTypeUnknownProfile = "UnknownProfileError"

// FolderSettingsFile is the settings file an inbox folder may hold: "profile: NAME" reads every
// file of the folder with that mapping profile.
const FolderSettingsFile = ".txflow.yaml"

// maxFolderSettings bounds the settings file read.
const maxFolderSettings = 64 << 10

// profile resolves the mapping profile of a run's file in the worker's profiles: the one named,
// otherwise the first whose filename pattern matches the file's name, otherwise nil (the file is
// recognised by its header). A name that is not among them is a non-retryable
// ErrTypeUnknownProfile error listing the known names.
func (a *Activities) profile(name, file string) (*txn.Profile, error) {
	p, err := a.Profiles.Resolve(name, file)
	var unknown *txn.UnknownProfileError
	if errors.As(err, &unknown) {
		// No cause: the message, which lists the known names, is what the run's summary shows.
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %s", file, err.Error()), ErrTypeUnknownProfile, nil)
	}
	return p, err
}

// folderProfile reads the profile name of the settings file of an inbox folder of root, "" when
// the folder has none.
func folderProfile(root *os.Root, dir string) (string, error) {
	name := filepath.Join(dir, FolderSettingsFile)
	f, err := root.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.ToSlash(name), confined(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFolderSettings))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.ToSlash(name), err)
	}
	return txn.ParseFolderSettings(data, filepath.ToSlash(name))
}
